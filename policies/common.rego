# METADATA
# title: Shared helpers of the Ketenbroker policies
# description: Lookups into the convenant (data.convenant) and the case facts (input.case).
package ketenbroker.common

import rego.v1

# The convenant's exchange type the requester asks for; undefined when unknown.
# Looked up by id in data.convenant_index (built with the bundle from
# data.convenant, broker/policy/inputs.py): scanning the exchanges array
# cost a fifth of a millisecond per decision in rego-cpp.
exchange_type := data.convenant_index.exchanges[input.exchange.query]

# The requester's own entry in the case's partner list.
requester_in_case := p if {
	some p in input.case.partners
	p.partner == input.requester.partner
}

requester_is_active if requester_in_case.status == "actief"

requester_is_regisseur if input.case.regisseur == input.requester.partner

subject_in_case := s if {
	some s in input.case.subjects
	s.ref == input.subject.ref
}

final_states := {"afgesloten", "geen_complexe_overlast"}

owner_is_corporation if data.convenant_index.partners[input.case.dwelling_owner].role == "corporatie"
