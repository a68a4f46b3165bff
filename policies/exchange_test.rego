# Unit tests of ketenbroker.exchange, run by `ketenbroker policy test`
# against the example convenant (data.convenant). Each test names its rule.
#
# Convention (docs/adr/0003-rego-tests-without-with.md): rego-cpp crashes on
# `with input as` when the rule under test calls a built-in, so a test does
# not use `with`. Its input document is declared as test_inputs[<test name>]
# and the runner evaluates the test with that input set.
package ketenbroker.exchange_test

import data.ketenbroker.exchange
import rego.v1

partners := [
	{"partner": "gemeente-lekstroom", "role": "gemeente", "function": null, "status": "actief"},
	{"partner": "politie-lekstroom", "role": "politie", "function": null, "status": "actief"},
	{"partner": "woonstichting-de-linge", "role": "corporatie", "function": null, "status": "actief"},
	{"partner": "buurtteam-lekstroom", "role": "zorg", "function": "buurtteam", "status": "actief"},
]

case_doc := {
	"id": "case_1",
	"kind": "complex",
	"status": "in_behandeling",
	"regisseur": "gemeente-lekstroom",
	"dwelling_owner": "woonstichting-de-linge",
	"consent": "granted",
	"criteria": [1, 2],
	"partners": partners,
	"subjects": [{"ref": "og-1", "role": "overlastgever"}],
	"events": [],
	"urgent": false,
}

gemeente := {"partner": "gemeente-lekstroom", "role": "gemeente", "function": null, "user": "u", "user_function": "casemanager"}

corporatie := {"partner": "woonstichting-de-linge", "role": "corporatie", "function": null, "user": "u", "user_function": "woonconsulent"}

politie := {"partner": "politie-lekstroom", "role": "politie", "function": null, "user": "u", "user_function": "wijkagent"}

stranger := object.union(corporatie, {"partner": "woongoed-lekstroom"})

ask(requester, query, case) := {
	"exchange": {"id": "ex_1", "query": query, "purpose": "aanpak_woonoverlast", "period": {"from": "2026-01-01", "to": "2026-06-30", "days": 181}},
	"requester": requester,
	"case": case,
	"subject": {"ref": "og-1"},
}

with_case(changes) := object.union(case_doc, changes)

with_exchange(inp, changes) := object.union(inp, {"exchange": object.union(inp.exchange, changes)})

codes := {r.code | some r in exchange.decision.refusals}

# --- R1 ---------------------------------------------------------------------------

test_inputs["test_r1_casemanager_may_ask_the_police"] := ask(gemeente, "politie.meldingen", case_doc)

test_r1_casemanager_may_ask_the_police if {
	exchange.decision.allow
	exchange.decision.provider == "politie-lekstroom"
	exchange.decision.legal_basis.law == "Wet politiegegevens"
	count(exchange.decision.fields) == 6
}

test_inputs["test_r1_stranger_is_not_a_case_partner"] := ask(stranger, "corporatie.huurrelatie", case_doc)

test_r1_stranger_is_not_a_case_partner if "not_case_partner" in codes

test_inputs["test_r1_absent_case_is_not_case_partner"] := ask(gemeente, "politie.meldingen", null)

test_r1_absent_case_is_not_case_partner if {
	"not_case_partner" in codes
	min({r.rank | some r in exchange.decision.refusals}) == 1
}

test_inputs["test_r1_withdrawn_partner_asks_nothing"] := ask(gemeente, "politie.meldingen", with_case({"partners": array.concat(
	[{"partner": "gemeente-lekstroom", "role": "gemeente", "function": null, "status": "teruggetrokken"}],
	[p | some p in partners; p.partner != "gemeente-lekstroom"],
)}))

test_r1_withdrawn_partner_asks_nothing if "not_case_partner" in codes

test_inputs["test_r1_purpose_other_than_woonoverlast_is_refused"] := with_exchange(ask(gemeente, "politie.meldingen", case_doc), {"purpose": "woonfraude"})

test_r1_purpose_other_than_woonoverlast_is_refused if codes == {"purpose_mismatch"}

test_inputs["test_r1_subject_outside_the_case_is_refused"] := object.union(ask(gemeente, "politie.meldingen", case_doc), {"subject": {"ref": "x-1"}})

test_r1_subject_outside_the_case_is_refused if codes == {"subject_not_in_case"}

test_inputs["test_r1_closed_case_exchanges_nothing"] := ask(gemeente, "politie.meldingen", with_case({"status": "afgesloten"}))

test_r1_closed_case_exchanges_nothing if codes == {"case_closed"}

test_inputs["test_r1_not_complex_case_exchanges_nothing"] := ask(gemeente, "politie.meldingen", with_case({"status": "geen_complexe_overlast"}))

test_r1_not_complex_case_exchanges_nothing if codes == {"case_closed"}

test_inputs["test_r1_intake_allows_the_police_question"] := ask(gemeente, "politie.meldingen", with_case({"status": "aangemeld"}))

test_r1_intake_allows_the_police_question if exchange.decision.allow

test_inputs["test_r1_intake_does_not_yet_ask_care"] := ask(gemeente, "buurtteam.bekendheid", with_case({"status": "aangemeld"}))

test_r1_intake_does_not_yet_ask_care if codes == {"exchange_not_allowed"}

test_inputs["test_r1_consent_pending_blocks_exchange"] := ask(gemeente, "politie.meldingen", with_case({"consent": "pending"}))

test_r1_consent_pending_blocks_exchange if codes == {"consent_pending"}

test_inputs["test_r1_refused_consent_blocks_exchange"] := ask(gemeente, "politie.meldingen", with_case({"consent": "refused"}))

test_r1_refused_consent_blocks_exchange if codes == {"consent_pending"}

test_inputs["test_r1_particulier_dwelling_needs_no_consent"] := ask(gemeente, "politie.meldingen", with_case({"consent": "not_required", "dwelling_owner": "particulier"}))

test_r1_particulier_dwelling_needs_no_consent if exchange.decision.allow

test_inputs["test_r1_period_beyond_the_convenant_term_is_refused"] := with_exchange(
	ask(gemeente, "politie.meldingen", case_doc),
	{"period": {"from": "2020-01-01", "to": "2026-01-01", "days": 2193}},
)

test_r1_period_beyond_the_convenant_term_is_refused if codes == {"period_too_wide"}

test_inputs["test_r1_unknown_exchange_type_is_refused"] := ask(gemeente, "politie.strafblad", case_doc)

test_r1_unknown_exchange_type_is_refused if codes == {"exchange_not_allowed"}

# --- R3, R4, R5 -------------------------------------------------------------------

test_inputs["test_r3_corporation_may_not_ask_the_police"] := ask(corporatie, "politie.meldingen", case_doc)

test_r3_corporation_may_not_ask_the_police if codes == {"exchange_not_allowed"}

test_inputs["test_r3_police_may_not_ask_itself"] := ask(politie, "politie.meldingen", case_doc)

test_r3_police_may_not_ask_itself if "exchange_not_allowed" in codes

test_inputs["test_r4_only_the_regisseur_asks_care"] := ask(corporatie, "buurtteam.bekendheid", case_doc)

test_r4_only_the_regisseur_asks_care if codes == {"exchange_not_allowed"}

test_inputs["test_r5_police_may_ask_the_corporation"] := ask(politie, "corporatie.huurrelatie", case_doc)

test_r5_police_may_ask_the_corporation if {
	exchange.decision.allow
	exchange.decision.provider == "woonstichting-de-linge"
}

# --- R11 and acute necessity ------------------------------------------------------

test_inputs["test_r11_enkelvoudig_case_exchanges_nothing"] := ask(gemeente, "politie.meldingen", with_case({"kind": "enkelvoudig"}))

test_r11_enkelvoudig_case_exchanges_nothing if codes == {"exchange_not_allowed"}

test_inputs["test_r11_complex_case_needs_its_criteria"] := ask(gemeente, "politie.meldingen", with_case({"criteria": [1]}))

test_r11_complex_case_needs_its_criteria if codes == {"exchange_not_allowed"}

test_inputs["test_r11_unknown_criteria_do_not_count"] := ask(gemeente, "politie.meldingen", with_case({"criteria": [1, 99]}))

test_r11_unknown_criteria_do_not_count if codes == {"exchange_not_allowed"}

test_inputs["test_acute_necessity_skips_the_criteria_and_flags_review"] := ask(gemeente, "politie.meldingen", with_case({"criteria": [], "urgent": true}))

test_acute_necessity_skips_the_criteria_and_flags_review if {
	exchange.decision.allow
	exchange.decision.flags == ["urgent_review"]
}

test_inputs["test_acute_necessity_skips_nothing_else"] := ask(gemeente, "politie.meldingen", with_case({"criteria": [], "urgent": true, "status": "afgesloten"}))

test_acute_necessity_skips_nothing_else if codes == {"case_closed"}

test_inputs["test_lowest_rank_is_not_case_partner"] := ask(stranger, "politie.meldingen", case_doc)

test_lowest_rank_is_not_case_partner if min({r.rank | some r in exchange.decision.refusals}) == 1
