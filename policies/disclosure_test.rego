# Unit tests of ketenbroker.disclosure, run by `ketenbroker policy test`.
# Inputs per test in test_inputs (see exchange_test.rego for why).
package ketenbroker.disclosure_test

import data.ketenbroker.disclosure
import data.ketenbroker.exchange_test
import rego.v1

police := {"partner": "politie-lekstroom", "role": "politie", "function": null}

buurtteam := {"partner": "buurtteam-lekstroom", "role": "zorg", "function": "buurtteam"}

mediation := {"partner": "buurtbemiddeling-lekstroom", "role": "zorg", "function": "buurtbemiddeling"}

field(name, category, boolean, texts) := {"name": name, "category": category, "boolean": boolean, "texts": texts, "oversized": false}

answer(query, provider, case, fields) := object.union(
	exchange_test.ask(exchange_test.gemeente, query, case),
	{"provider": provider, "answer": {"subject_known": true, "fields": fields}},
)

police_fields(investigation) := [
	field("meldingen_aantal", "nuisance", null, []),
	field("meldingen", "nuisance", null, ["harde muziek na middernacht"]),
	field("bekend_overlast_antecedenten", "nuisance_history", true, []),
	field("lopend_onderzoek", "investigation", investigation, []),
	field("strafrechtelijke_antecedenten", "criminal", null, ["diefstal 2019"]),
]

police_answer(case, fields) := answer("politie.meldingen", police, case, fields)

disclosed := {n | some n in disclosure.decision.disclose}

withheld_codes(name) := {w.code | some w in disclosure.decision.withheld; w.field == name}

# --- R1 ---------------------------------------------------------------------------

test_inputs["test_r1_unlisted_fields_are_withheld_invisibly"] := police_answer(exchange_test.case_doc, police_fields(false))

test_r1_unlisted_fields_are_withheld_invisibly if {
	"strafrechtelijke_antecedenten" in {w.field | some w in disclosure.decision.withheld; w.visible == false}
	not "strafrechtelijke_antecedenten" in disclosed
	not "lopend_onderzoek" in disclosed
}

# --- R3 ---------------------------------------------------------------------------

test_inputs["test_r3_antecedents_flow_without_investigation"] := police_answer(exchange_test.case_doc, police_fields(false))

test_r3_antecedents_flow_without_investigation if "bekend_overlast_antecedenten" in disclosed

test_inputs["test_r3_running_investigation_is_never_revealed"] := police_answer(exchange_test.case_doc, police_fields(true))

test_r3_running_investigation_is_never_revealed if {
	not "bekend_overlast_antecedenten" in disclosed
	[w] := [w | some w in disclosure.decision.withheld; w.field == "bekend_overlast_antecedenten"]
	w.code == "investigation_running"
	w.public_reason == data.rules.politie.neutral_reason
	not contains(lower(w.public_reason), "onderzoek")
	not contains(lower(w.public_reason), "investigation")
}

test_inputs["test_r3_missing_investigation_flag_counts_as_running"] := police_answer(
	exchange_test.case_doc,
	[f | some f in police_fields(false); f.name != "lopend_onderzoek"],
)

test_r3_missing_investigation_flag_counts_as_running if {
	withheld_codes("bekend_overlast_antecedenten") == {"investigation_running"}
}

test_inputs["test_r3_om_permission_lets_antecedents_flow"] := police_answer(
	exchange_test.with_case({"events": ["om_toestemming"]}),
	police_fields(true),
)

test_r3_om_permission_lets_antecedents_flow if "bekend_overlast_antecedenten" in disclosed

# --- R2 ---------------------------------------------------------------------------

test_inputs["test_r2_special_category_field_never_flows_even_if_listed"] := police_answer(exchange_test.case_doc, [field("meldingen", "criminal", null, [])])

test_r2_special_category_field_never_flows_even_if_listed if {
	withheld_codes("meldingen") == {"special_category"}
	count(disclosed) == 0
}

test_inputs["test_r2_unknown_category_fails_closed"] := police_answer(exchange_test.case_doc, [field("meldingen", "mystery", null, [])])

test_r2_unknown_category_fails_closed if withheld_codes("meldingen") == {"unknown_category"}

test_inputs["test_r2_free_text_about_drugs_is_withheld"] := police_answer(exchange_test.case_doc, [field("meldingen", "nuisance", null, ["buurman vermoedelijk onder invloed van drugs"])])

test_r2_free_text_about_drugs_is_withheld if withheld_codes("meldingen") == {"special_category_text"}

test_inputs["test_r2_plain_nuisance_text_flows"] := police_answer(exchange_test.case_doc, [field("meldingen", "nuisance", null, ["harde muziek en geschreeuw in het trappenhuis"])])

test_r2_plain_nuisance_text_flows if disclosure.decision.disclose == ["meldingen"]

test_inputs["test_r2_oversized_text_is_withheld"] := police_answer(exchange_test.case_doc, [object.union(field("meldingen", "nuisance", null, []), {"oversized": true})])

test_r2_oversized_text_is_withheld if withheld_codes("meldingen") == {"text_too_long"}

# --- R4 ---------------------------------------------------------------------------

test_inputs["test_r4_care_worker_name_when_known"] := answer("buurtteam.bekendheid", buurtteam, exchange_test.case_doc, [
	field("bekend", "care_relation", true, []),
	field("hulpverlener_naam", "care_relation", null, ["Ilse Jansen"]),
])

test_r4_care_worker_name_when_known if disclosed == {"bekend", "hulpverlener_naam"}

test_inputs["test_r4_no_care_worker_name_when_not_known"] := answer("buurtteam.bekendheid", buurtteam, exchange_test.case_doc, [
	field("bekend", "care_relation", false, []),
	field("hulpverlener_naam", "care_relation", null, ["Ilse Jansen"]),
])

test_r4_no_care_worker_name_when_not_known if disclosed == {"bekend"}

test_inputs["test_r4_diagnosis_never_leaves_care"] := answer("buurtteam.bekendheid", buurtteam, exchange_test.case_doc, [
	field("bekend", "care_relation", true, []),
	field("diagnose", "health", null, ["verslaving"]),
])

test_r4_diagnosis_never_leaves_care if disclosed == {"bekend"}

mediation_fields := [
	field("aangemeld_bij_bemiddeling", "care_relation", true, []),
	field("bemiddeling_status", "care_relation", null, ["gesprekken lopen"]),
	field("afspraken", "free_text", null, ["geen harde muziek na 22.00 uur"]),
]

test_inputs["test_r4_mediation_content_needs_consent_of_both"] := answer(
	"buurtbemiddeling.terugkoppeling", mediation,
	exchange_test.with_case({"events": ["bemiddeling_toestemming_melder"]}),
	mediation_fields,
)

test_r4_mediation_content_needs_consent_of_both if {
	disclosed == {"aangemeld_bij_bemiddeling"}
	withheld_codes("afspraken") == {"mediation_consent_missing"}
}

test_inputs["test_r4_mediation_content_flows_with_both_consents"] := answer(
	"buurtbemiddeling.terugkoppeling", mediation,
	exchange_test.with_case({"events": ["bemiddeling_toestemming_melder", "bemiddeling_toestemming_overlastgever"]}),
	mediation_fields,
)

test_r4_mediation_content_flows_with_both_consents if count(disclosed) == 3
