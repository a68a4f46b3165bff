# Unit tests for the R2 free-text scan (lexicon.rego; seed 002 §5.2).
#
# They run against the shipped lexicon (policies/data/lexicon.json): the
# first group pins the matching rules (stems, words, phrases, exceptions)
# with entries chosen for that, the second pins decisions a DPO would expect
# on typical notes. Inputs are already normalised, as `normalise_text`
# leaves them.
#
# Not here, because rego-cpp 1.5 mishandles `with`: the `scan` entrypoint
# and the rules against a made-up lexicon are tested from Python through
# the embedded engine (tests/policy/test_lexicon.py).
package ketenbroker.lexicon_test

import rego.v1

import data.ketenbroker.lexicon

# --- matching rules

test_stem_matches_inside_a_compound if {
	# stem "verslav"
	lexicon.hits("hij heeft een drugsverslaving") == {"health"}
	lexicon.hits("verslaving") == {"health"}
}

test_stem_matches_at_the_end_of_a_token if {
	# stem "schuld"
	lexicon.hits("een forse huurschuld") == {"financial"}
}

test_stem_inside_an_exception_token_is_ignored if {
	# "afkomstig" contains the stem "afkomst"
	count(lexicon.hits("het geluid is afkomstig van nummer 12")) == 0
}

test_exception_token_does_not_hide_another_token if {
	lexicon.hits("het geluid is afkomstig van de marokkaanse buren") == {"ethnicity"}
	lexicon.hits("hij is onschuldig maar heeft wel schulden") == {"financial"}
}

test_exception_must_equal_the_whole_token if {
	# "schuld" alone is an exception (blame), "schulden" is debt
	count(lexicon.hits("zij geven hem de schuld")) == 0
	lexicon.hits("hij heeft schulden") == {"financial"}
}

test_word_matches_a_whole_token_only if {
	# word "sp" (a party), not the start of "spullen"
	lexicon.hits("hij is lid van de sp") == {"political"}
	count(lexicon.hits("er staan spullen op de galerij")) == 0
}

test_phrase_matches_a_run_of_whole_tokens_only if {
	lexicon.hits("hij is onder behandeling bij de huisarts") == {"health"}
	lexicon.hits("onder behandeling") == {"health"}
	count(lexicon.hits("zonder behandeling")) == 0
	count(lexicon.hits("onder behandelingen door")) == 0
	count(lexicon.hits("de melding is in behandeling")) == 0
}

test_several_categories_are_all_reported if {
	lexicon.hits("drugsverslaving huurschuld en de moskee") == {"health", "financial", "religion"}
}

test_empty_text_has_no_hits if {
	count(lexicon.hits("")) == 0
}

# --- the shipped lexicon (policies/data/lexicon.json)

test_lexicon_health_compound_and_care_involvement if {
	"health" in lexicon.hits("volgens de wijkagent heeft meneer een drugsverslaving")
	"health" in lexicon.hits("bewoner is bekend bij de ggz")
	"health" in lexicon.hits("ggd heeft een huisbezoek afgelegd")
	"health" in lexicon.hits("hij is onder behandeling bij parnassia")
}

test_lexicon_criminal_record_and_detention if {
	"criminal" in lexicon.hits("overlastgever heeft een strafblad")
	"criminal" in lexicon.hits("buurman is veroordeeld tot een taakstraf")
	"criminal" in lexicon.hits("een veroordeling voor heling")
	"criminal" in lexicon.hits("er is een proces verbaal opgemaakt")
	"criminal" in lexicon.hits("bekend met overlast antecedenten")
}

test_lexicon_financial_debts_and_benefits if {
	"financial" in lexicon.hits("huurder heeft een huurachterstand")
	"financial" in lexicon.hits("zij zit in de schuldhulpverlening")
	"financial" in lexicon.hits("meneer leeft van een bijstandsuitkering")
	"financial" in lexicon.hits("zij zit in de bijstand")
}

test_lexicon_other_article_9_categories if {
	"ethnicity" in lexicon.hits("van marokkaanse afkomst")
	"religion" in lexicon.hits("gaat elke vrijdag naar de moskee")
	"political" in lexicon.hits("hangt pvv posters op")
	"trade_union" in lexicon.hits("kaderlid van de fnv")
	"genetic" in lexicon.hits("er is dna onderzoek gedaan")
	"biometric" in lexicon.hits("vingerafdrukken afgenomen")
	"sex_life" in lexicon.hits("scheldt de buren uit omdat ze homo zijn")
}

test_lexicon_ordinary_nuisance_is_not_special if {
	count(lexicon.hits("de bewoners van nummer 3 houden s nachts feestjes met harde muziek")) == 0
	count(lexicon.hits("het plan van aanpak is besproken met alle partners")) == 0
	count(lexicon.hits("de politie is drie keer ter plaatse geweest voor geluidsoverlast")) == 0
}

test_lexicon_street_names_are_not_religion if {
	count(lexicon.hits("melder woont aan de kerkstraat 12")) == 0
	count(lexicon.hits("het overleg is op het politiebureau aan de kerkweg")) == 0
}

test_lexicon_handling_and_recording_are_not_health if {
	count(lexicon.hits("de behandeling van de klacht is overgedragen")) == 0
	count(lexicon.hits("de melding is in behandeling bij het wijkteam")) == 0
	count(lexicon.hits("de opname van het geluid is aangeleverd")) == 0
	count(lexicon.hits("bewoner stuurde de geluidsopname door")) == 0
}

test_lexicon_exceptions_hold if {
	count(lexicon.hits("het geluid is afkomstig van de bovenburen")) == 0
	count(lexicon.hits("hij bood zijn verontschuldigingen aan")) == 0
	count(lexicon.hits("hij staat schuldbewust voor de deur")) == 0
	count(lexicon.hits("de inkomende meldingen")) == 0
	count(lexicon.hits("er werd koffie gedronken")) == 0
}

test_lexicon_idioms_and_police_assistance_are_not_special if {
	count(lexicon.hits("de buren zijn ziek van de herrie")) == 0
	count(lexicon.hits("politie heeft bijstand verleend bij het huisbezoek")) == 0
	count(lexicon.hits("de zaak is aangehouden tot na het overleg")) == 0
	count(lexicon.hits("de casus ligt politiek gevoelig")) == 0
}
