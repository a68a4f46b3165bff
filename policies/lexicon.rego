# The R2 special-category scan for free text.
#
# R2 (shared/domain.md; seed 002 §5.2): criminal, health and income
# information are not shared within the partnership, and neither are the
# other GDPR art. 9 categories. Free-text values (a short description, a
# note) are scanned for them in Dutch; a hit withholds the whole value. The
# caller applies that; this module only says which categories a text
# touches.
#
# The vocabulary is data, `data.lexicon` (policies/data/lexicon.json), so the
# DPO can read and extend it without touching Rego. Per category:
#   stems    match anywhere inside a token ("verslav" in "drugsverslaving"),
#            unless that token is listed in `exceptions` ("afkomstig");
#   words    match a whole token ("lvb", "pv");
#   phrases  match a whole run of tokens ("onder behandeling").
# The text must already be in the lexicon's normal form: lowercase a-z, 0-9,
# single spaces, no leading or trailing space (`normalise_text` in
# broker/policy/normalise.py). policies/README_lexicon.md has the details.
#
# Cost. In rego-cpp (the embedded engine) each element a rule iterates over
# costs one to two microseconds, while a builtin over a whole array is cheap.
# So words are matched with `strings.any_prefix_match` over a whole category
# (a fraction of a microsecond per word), stems and phrases with one
# `contains` each (about 2 microseconds). The cost grows with the lexicon,
# hardly with the text; the README has measured figures and says where to
# put new entries.
#
# rego-cpp 1.5 quirks this module avoids, so it runs unchanged in OPA 1.x
# and in regopy: `some k, v in x` inside a comprehension does not parse, and
# a reference like data.lexicon.categories[name].words passed straight into
# a builtin does not enumerate `name`; it is bound to a variable first.
package ketenbroker.lexicon

import rego.v1

# hits(normalised) is the set of category names (keys of
# data.lexicon.categories) of which a stem, word or phrase occurs in the
# normalised text. The empty set means no special-category term was found.
hits(normalised) := (stem_hits | word_hits) | phrase_hits if {
	padded := concat("", [" ", normalised, " "])
	tokens := split(normalised, " ")

	# Every token with the space that closes it: "a b" -> ["a ", "b ", ""].
	# A token equals word w exactly when it starts with "w ".
	closed := split(replace(concat("", [normalised, " "]), " ", " |"), "|")

	stem_hits := {name |
		some name
		stems := data.lexicon.categories[name].stems
		some stem in stems

		# One test on the whole text first; only a stem that occurs is
		# looked for token by token, to skip exception tokens.
		contains(padded, stem)
		in_kept_token(stem, tokens)
	}

	word_hits := {name |
		some name
		words := data.lexicon.categories[name].words

		# Cheap prefilter on the raw words (some token starts with a word),
		# then the exact test, which has to build "w " for every word.
		strings.any_prefix_match(closed, words)
		strings.any_prefix_match(closed, closed_entries(words))
	}

	phrase_hits := {name |
		some name
		phrases := data.lexicon.categories[name].phrases
		some phrase in phrases

		# Prefilter on the bare phrase, then whole tokens only.
		contains(padded, phrase)
		contains(padded, concat("", [" ", phrase, " "]))
	}
}

# The scan as an entrypoint (ketenbroker/lexicon/scan), for tests and tools:
# input {"text": <normalised text>}.
scan := {"categories": hits(input.text)}

in_kept_token(stem, tokens) if {
	some token in tokens
	contains(token, stem)
	not is_exception(token)
}

# A token is an exception when " token " occurs in " e1 e2 ... ".
is_exception(token) if contains(exception_line, concat("", [" ", token, " "]))

exception_line := concat("", [" ", concat(" ", data.lexicon.exceptions), " "])

# ["w1", "w2"] -> ["w1 ", "w2 "] in two builtin calls rather than a loop.
closed_entries(words) := split(concat("", [concat(" |", words), " "]), "|")
