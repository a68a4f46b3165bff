# METADATA
# title: May this exchange take place? (before anything is fetched)
# description: |
#   Entrypoint ketenbroker/exchange/decision. Input and output are documented
#   in policies/README.md. Every refusal names a contract.md code and a
#   reason a person understands; the lowest rank is the one the requester sees.
package ketenbroker.exchange

import data.ketenbroker.common
import rego.v1

# Which refusal the requester is told about first. Existence comes before
# detail: somebody who is not a partner of the case learns nothing else (R1).
rank := {
	"not_case_partner": 1,
	"exchange_not_allowed": 2,
	"subject_not_in_case": 3,
	"purpose_mismatch": 4,
	"case_closed": 5,
	"consent_pending": 6,
	"period_too_wide": 7,
}

refusal(code, reason) := {"code": code, "reason": reason, "public_reason": reason, "rank": rank[code]}

# --- R1: need-to-know -------------------------------------------------------------

# R1: only active partners of this very case may ask anything about it.
refusals contains refusal("not_case_partner", "You are not an active partner of this case.") if {
	not common.requester_is_active
}

# R1: the exchange type must exist in the convenant.
refusals contains refusal("exchange_not_allowed", "The convenant has no such exchange type.") if {
	not common.exchange_type
}

# R1: the exchange type must be open to the requester's role.
refusals contains refusal("exchange_not_allowed", msg) if {
	et := common.exchange_type
	not input.requester.role in et.requester_roles
	msg := concat("", ["The convenant does not allow role ", input.requester.role, " to ask for ", et.id, "."])
}

# R3 (seed 004 §5.3) and R4 (seed 004 §5.6): only the case's regisseur may ask.
refusals contains refusal("exchange_not_allowed", "Only the case's regisseur may ask for this exchange.") if {
	common.exchange_type.regisseur_only
	not common.requester_is_regisseur
}

# R1: somebody must be there to answer: one active partner of the provider's role.
refusals contains refusal("exchange_not_allowed", "No partner of this case can answer this exchange.") if {
	common.exchange_type
	common.requester_is_active
	not provider
}

# R1: questions are about a party of this case only.
refusals contains refusal("subject_not_in_case", "The subject is not a party of this case.") if {
	input.case != null
	not common.subject_in_case
}

# R1: purpose limitation (seeds 000 and 002 §3.3.2): nuisance only, not
# investigation, housing fraud or public order.
refusals contains refusal("purpose_mismatch", msg) if {
	input.exchange.purpose != data.convenant.purpose
	msg := concat("", ["The convenant allows exchange only for purpose ", data.convenant.purpose, "."])
}

# R1: nothing flows once a case is closed or turned out not to be complex.
refusals contains refusal("case_closed", "The case is closed; nothing is exchanged any more.") if {
	input.case.status in common.final_states
}

# R1: during intake (aangemeld) only what the intake decision needs: the
# exchange types the convenant marks `intake` (seed 004 §5.1, 002 §3.4).
refusals contains refusal("exchange_not_allowed", msg) if {
	input.case.status == "aangemeld"
	et := common.exchange_type
	not et.intake
	msg := concat("", ["During intake (aangemeld) ", et.id, " is not yet exchanged."])
}

# R1, seed 004 §5.1-5.2: the corporation owning the dwelling consents first.
refusals contains refusal("consent_pending", "The corporation owning the dwelling has not consented yet.") if {
	common.owner_is_corporation
	input.case.consent == "pending"
}

refusals contains refusal("consent_pending", "The corporation owning the dwelling refused consent.") if {
	common.owner_is_corporation
	input.case.consent == "refused"
}

# R1: a question covers a bounded period (the convenant's term per exchange type).
refusals contains refusal("period_too_wide", msg) if {
	et := common.exchange_type
	input.exchange.period.days > et.max_period_days
	msg := concat("", ["The period may span at most ", format_int(et.max_period_days, 10), " days for ", et.id, "."])
}

# --- R11: multi-partner exchange needs a complex case -----------------------------

# An enkelvoudig case is handled by one partner (seed 002 §2.1.1): no exchange.
refusals contains refusal("exchange_not_allowed", "An enkelvoudig case is handled by one partner; exchange needs a complex case.") if {
	input.case.kind == "enkelvoudig"
}

# A complex case needs its admission criteria recorded (R11; seed 004 §2: at
# least 2 of 6), unless the regisseur marked acute necessity.
refusals contains refusal("exchange_not_allowed", msg) if {
	input.case.kind == "complex"
	not criteria_met
	not input.case.urgent
	c := data.convenant.complex_case_criteria
	msg := concat("", ["The case does not record at least ", format_int(c.minimum, 10), " of the ", format_int(count(c.items), 10), " admission criteria."])
}

# The criteria ids come from data.convenant_index (the convenant's
# complex_case_criteria.items, listed once when the bundle is built).
criteria_met if {
	recorded := {c | some c in input.case.criteria; c in data.convenant_index.criteria_ids}
	count(recorded) >= data.convenant.complex_case_criteria.minimum
}

# --- who answers ------------------------------------------------------------------

# Active partners of the case with the provider's role (and function).
candidates contains p.partner if {
	et := common.exchange_type
	some p in input.case.partners
	p.status == "actief"
	p.role == et.provider_role
	function_matches(et, p)
	p.partner != input.requester.partner
}

function_matches(et, _) if et.provider_function == null

function_matches(et, p) if p.function == et.provider_function

# For a corporation's question the dwelling's owner answers, if it takes part.
provider := input.case.dwelling_owner if {
	common.exchange_type.provider_role == "corporatie"
	input.case.dwelling_owner in candidates
}

provider := p if {
	common.exchange_type.provider_role != "corporatie"
	count(candidates) == 1
	some p in candidates
}

# --- the decision -----------------------------------------------------------------

# Acute necessity is a logged break-glass route: every exchange is flagged
# for the DPO's review (seed 004 §2).
flags contains data.rules.urgent_flag if input.case.urgent

default provider_or_null := null

provider_or_null := provider

default fields := []

fields := common.exchange_type.fields if count(refusals) == 0

default legal_basis := null

legal_basis := common.exchange_type.legal_basis

default processing_activity := null

processing_activity := common.exchange_type.processing_activity

decision := {
	"allow": count(refusals) == 0,
	"refusals": [r | some r in refusals],
	"provider": provider_or_null,
	"fields": fields,
	"legal_basis": legal_basis,
	"processing_activity": processing_activity,
	"flags": [f | some f in flags],
}
