# The R2 special-category scan for free text.
#
# R2 (domain.md; seed 002 §5.2): criminal, health and income information,
# and the other GDPR art. 9 categories, are never shared between partners.
# A free-text value (a short description, a note) is scanned for such
# content; a hit withholds the whole value. The caller decides that; this
# module only says which categories a text touches.
#
# The vocabulary is data, `data.lexicon` (policies/data/lexicon.json), so the
# DPO can read and extend it without touching Rego. Per category:
#   stems    match anywhere inside a token ("verslav" in "drugsverslaving"),
#            except inside a token listed in `exceptions` ("afkomstig");
#   words    match a whole token only ("ggz", "pv");
#   phrases  match a whole run of tokens ("onder behandeling").
# The text must already be in the lexicon's normal form: lowercase a-z, 0-9
# and single spaces (broker/policy/normalise.py, `normalise_text`).
#
# Cost (rego-cpp 1.5, the embedded engine): every element a rule iterates
# over costs about 2-3 microseconds, while builtins that take a whole array
# cost next to nothing. So whole-token words are matched in one
# `strings.any_prefix_match` per category and cost nothing per word; stems
# and phrases each cost one `contains`. A 330-character note takes about
# 0.4 ms with the shipped lexicon; keep new entries in `words` where a
# whole-token match is enough (policies/README_lexicon.md).
package ketenbroker.lexicon

import rego.v1

# hits(normalised) is the set of category names (keys of
# data.lexicon.categories) whose stems, words or phrases occur in the
# normalised text. An empty set means no special-category term was found.
hits(normalised) := found if {
	padded := concat("", [" ", normalised, " "])
	tokens := split(normalised, " ")

	# Every token with the space that closes it: "a b" -> ["a ", "b ", ""].
	# A token equals word w exactly when it starts with "w ".
	closed := split(replace(concat("", [normalised, " "]), " ", " |"), "|")
	found := {name |
		some name
		category := data.lexicon.categories[name]
		category_matches(category, tokens, closed, padded)
	}
}

# The scan as an entrypoint (ketenbroker/lexicon/scan), for tests and for
# `ketenbroker policy` tooling: input {"text": <normalised text>}.
scan := {"categories": hits(input.text)}

category_matches(category, _, closed, _) if {
	words := object.get(category, "words", [])
	count(words) > 0
	strings.any_prefix_match(closed, closed_entries(words))
}

category_matches(category, _, _, padded) if {
	some phrase in object.get(category, "phrases", [])
	contains(padded, concat("", [" ", phrase, " "]))
}

category_matches(category, tokens, _, padded) if {
	some stem in object.get(category, "stems", [])

	# Cheap test on the whole text first; only a stem that occurs is
	# checked token by token against the exceptions.
	contains(padded, stem)
	some token in tokens
	contains(token, stem)
	not is_exception(token)
}

# ["w1", "w2"] -> ["w1 ", "w2 "], in two builtin calls instead of a loop.
closed_entries(words) := split(concat("", [concat(" |", words), " "]), "|")

is_exception(token) if contains(exception_line, concat("", [" ", token, " "]))

exception_line := concat("", [" ", concat(" ", object.get(data.lexicon, "exceptions", [])), " "])
