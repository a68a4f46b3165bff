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
import rego.v1

listed contains f if some f in common.exchange_type.fields

special contains c if some c in data.categories.special

ordinary contains c if some c in data.categories.ordinary

# R1: only what the convenant lists for this exchange type.
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

# R2: special categories never flow, whatever the convenant lists.
withheld contains {
	"field": f.name,
	"code": "special_category",
	"reason": sprintf("Special-category data (%s) is never shared (R2, AVG art. 9/10).", [f.category]),
	"public_reason": "Special-category personal data is never shared.",
	"visible": true,
} if {
	some f in input.answer.fields
	f.name in listed
	f.category in special
}

# Fail closed: a category the policy does not know counts as special.
withheld contains {
	"field": f.name,
	"code": "unknown_category",
	"reason": sprintf("The adapter tagged this field with an unknown category %v.", [f.category]),
	"public_reason": "Special-category personal data is never shared.",
	"visible": true,
} if {
	some f in input.answer.fields
	f.name in listed
	not f.category in special
	not f.category in ordinary
}

withheld_names contains w.field if some w in withheld

disclose contains f.name if {
	some f in input.answer.fields
	not f.name in withheld_names
}

decision := {
	"disclose": [name | some name in disclose],
	"withheld": [w | some w in withheld],
}
