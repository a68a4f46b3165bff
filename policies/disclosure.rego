# METADATA
# title: What of the provider's answer may the requester see? (after fetching)
# description: |
#   Entrypoint ketenbroker/disclosure/decision. Every field of the adapter's
#   answer is disclosed or withheld with a reason. Withheld fields the
#   convenant does not list for this exchange stay invisible to the
#   requester (naming them would itself disclose, e.g. that a criminal
#   record exists); the audit log records every one of them.
package ketenbroker.disclosure

import data.ketenbroker.common
import data.ketenbroker.lexicon
import rego.v1

listed contains f if some f in common.exchange_type.fields

special contains c if some c in data.categories.special

ordinary contains c if some c in data.categories.ordinary

# Answer fields are iterated where needed, never collected into a set of
# field objects: building a set of objects that carry the answer's texts
# cost rego-cpp milliseconds per decision. In each rule the cheapest test
# that rules most fields out comes first (docs/performance.md).

boolean_fact(name) := f.boolean if {
	some f in input.answer.fields
	f.name == name
}

# --- R1: only what the convenant lists for this exchange ---------------------------

withheld contains {
	"field": f.name,
	"code": "not_in_convenant",
	"reason": "The convenant does not list this field for this exchange.",
	"public_reason": "Not part of this exchange.",
	"visible": false,
} if {
	some f in input.answer.fields
	not f.name in listed
}

# --- R2: special categories never flow, whatever the convenant lists ---------------
#
# Messages are built with concat, not sprintf: rego-cpp 1.5 renders a
# computed string inside sprintf with raw quotes (docs/adr/0003).

withheld contains {
	"field": f.name,
	"code": "special_category",
	"reason": concat("", ["Special-category data (", f.category, ") is never shared (R2, AVG art. 9/10)."]),
	"public_reason": "Special-category personal data is never shared.",
	"visible": true,
} if {
	some f in input.answer.fields
	f.category in special
	f.name in listed
}

# Fail closed: a category the policy does not know counts as special.
withheld contains {
	"field": f.name,
	"code": "unknown_category",
	"reason": concat("", ["The adapter tagged this field with an unknown category: ", format_category(f.category)]),
	"public_reason": "Special-category personal data is never shared.",
	"visible": true,
} if {
	some f in input.answer.fields
	not f.category in special
	not f.category in ordinary
	f.name in listed
}

# R2: free text (a short description, a note) that speaks of health, crime,
# money or another special category is withheld whole (seed 002 §5.2).
# Only listed fields of an ordinary category are scanned (others are
# withheld anyway), each field once, with its texts joined: the scan's cost
# is per call, not per character (policies/README_lexicon.md). " _ " keeps a
# phrase from matching across two texts.
text_hits[f.name] := lexicon.hits(concat(" _ ", f.texts)) if {
	some f in input.answer.fields
	f.name in listed
	f.category in ordinary
	count(f.texts) > 0
}

withheld contains {
	"field": name,
	"code": "special_category_text",
	"reason": concat("", ["Free text mentions special-category data (", concat(", ", sort([c | some c in hits])), ") (R2)."]),
	"public_reason": "Contains special-category personal data, which is never shared.",
	"visible": true,
} if {
	some name, hits in text_hits
	count(hits) > 0
}

# R2: text too long to scan is not shared (the bound is in broker/policy/inputs.py).
withheld contains {
	"field": f.name,
	"code": "text_too_long",
	"reason": "Free text exceeds the length the special-category scan accepts.",
	"public_reason": "Contains special-category personal data, which is never shared.",
	"visible": true,
} if {
	some f in input.answer.fields
	f.oversized == true
	f.name in listed
}

# --- R3: the police's limits (seed 004 §5.3) ---------------------------------------

police_answer if input.provider.role == "politie"

# Only an explicit "no investigation" from the police system excludes one;
# a missing flag counts as a possible investigation (fail closed).
investigation_excluded if boolean_fact(data.rules.politie.investigation_flag_field) == false

om_permission if data.rules.politie.om_permission_event in input.case.events

# Nuisance antecedents flow only without a running investigation, or with
# the OM's permission recorded on the case. The requester is never told why.
withheld contains {
	"field": f.name,
	"code": "investigation_running",
	"reason": "An investigation may be running and the OM's permission is not recorded (R3, seed 004 §5.3).",
	"public_reason": data.rules.politie.neutral_reason,
	"visible": true,
} if {
	police_answer
	some f in input.answer.fields
	f.name == data.rules.politie.antecedents_field
	f.name in listed
	not investigation_excluded
	not om_permission
}

# --- R4: care partners' limits (seed 004 §5.6, 002 §5.3) ---------------------------

care_answer if input.provider.role == "zorg"

# "Known to us: yes/no" and, only if yes, the care worker's name.
withheld contains {
	"field": f.name,
	"code": "care_not_known",
	"reason": "The care worker's name is shared only when the subject is known (R4).",
	"public_reason": "Not part of this exchange.",
	"visible": false,
} if {
	care_answer
	some f in input.answer.fields
	f.name == data.rules.zorg.worker_field
	f.name in listed
	boolean_fact(data.rules.zorg.known_field) != true
}

# Buurtbemiddeling gives content only with the consent of both parties.
mediation_consent if {
	every event in data.rules.mediation.consent_events {
		event in input.case.events
	}
}

withheld contains {
	"field": f.name,
	"code": "mediation_consent_missing",
	"reason": "Content from buurtbemiddeling needs the consent of both melder and overlastgever (R4, seed 002 §5.3).",
	"public_reason": "Shared only with the consent of both parties to the mediation.",
	"visible": true,
} if {
	care_answer
	some f in input.answer.fields
	f.name in common.exchange_type.consent_fields
	f.name in listed
	not mediation_consent
}

# --- the decision -----------------------------------------------------------------

# A category is an adapter's string, but fail closed on any other JSON type.
format_category(c) := c if is_string(c)

format_category(c) := "(not a string)" if not is_string(c)

withheld_names contains w.field if some w in withheld

disclose contains f.name if {
	some f in input.answer.fields
	not f.name in withheld_names
}

# R3: whatever withholds the antecedents item, the requester hears the same
# neutral reason, so its absence never tells that an investigation runs.
public(w) := object.union(w, {"public_reason": data.rules.politie.neutral_reason}) if {
	police_answer
	w.field == data.rules.politie.antecedents_field
}

public(w) := w if not antecedents_of_police(w)

antecedents_of_police(w) if {
	police_answer
	w.field == data.rules.politie.antecedents_field
}

decision := {
	"disclose": [name | some name in disclose],
	"withheld": [public(w) | some w in withheld],
}
