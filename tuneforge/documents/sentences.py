"""Sentence boundaries as character spans, for chunkers that must not cut inside a sentence.

    split_sentences("Dr. Smith left. He came back.")  ->  [(0, 15), (16, 29)]

A regex splitter rather than a library: pysbd is unmaintained since 2021 and slow, NLTK's punkt needs
a data download (no network at ingestion), spaCy is far too heavy, and semchunk splits text into
chunks but does not expose sentences, which the SEMANTIC strategy embeds one by one. What we need
is spans into the original text, so that chunk offsets stay exact.

Rules: a blank line always ends a sentence (paragraphs, headings, table rows). Inside a paragraph a
sentence ends after . ! ? or … (plus closing quotes or brackets) followed by whitespace and a character
that is not a lowercase letter, unless the word before the period is a known abbreviation ("Dr.",
"e.g.", "No."), an initial ("J."), a dotted acronym ("U.S.C."), or a section number after "§"
("§ 78b."). CJK full stops end a sentence without the whitespace. A single newline is a space.

Limits: English-centric abbreviations; "the U.S. Then ..." stays one sentence (a dotted acronym never
ends one); a sentence ending in an abbreviation ("... and Co. The") is joined to the next.
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt no nos vs cf al fig figs eq eqs sec secs art ch chap vol vols pp p para "
    "inc ltd co corp bros dept est approx gen gov rev jan feb mar apr jun jul aug sep sept oct nov dec".split()
)

_PARAGRAPH = re.compile(r"\n[^\S\n]*\n\s*")
_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)")
_CJK_END = re.compile(r"[。！？]+[」』”’）]*")
_WORD_BEFORE = re.compile(r"(\S+)\s*$")
_DOTTED = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")  # U.S.C, e.g, i.e (the final period is not included)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of the sentences of `text`, in order, with no surrounding whitespace."""
    spans: list[tuple[int, int]] = []
    paragraph_start = 0
    for match in _PARAGRAPH.finditer(text):
        _split_paragraph(text, paragraph_start, match.start(), spans)
        paragraph_start = match.end()
    _split_paragraph(text, paragraph_start, len(text), spans)
    return spans


def _split_paragraph(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    sentence_start = start
    cuts = [m.end() for m in _END.finditer(text, start, end) if _ends_sentence(text, start, m.start(), m.end(), end)]
    cuts += [m.end() for m in _CJK_END.finditer(text, start, end)]
    for cut in sorted(set(cuts)):
        _add(text, sentence_start, cut, spans)
        sentence_start = cut
    _add(text, sentence_start, end, spans)


def _ends_sentence(text: str, paragraph_start: int, mark: int, after: int, end: int) -> bool:
    following = after
    while following < end and text[following].isspace():
        following += 1
    if following >= end:
        return True
    if text[following].islower():
        return False  # "e.g. the", "approx. five": a lowercase word continues the sentence
    if text[mark] != ".":
        return True  # ! ? … never follow an abbreviation
    word = _WORD_BEFORE.search(text, max(paragraph_start, mark - 40), mark)
    if word is None:
        return True
    token = word.group(1).lstrip("([{\"'“‘")
    if token.casefold() in ABBREVIATIONS or _DOTTED.fullmatch(token):
        return False
    if len(token) == 1 and token.isalpha() and token.isupper():
        return False  # an initial: "J. Smith"
    before = text[max(paragraph_start, word.start(1) - 3) : word.start(1)]
    return "§" not in before  # "§ 78b. Necessity for regulation" is a section heading, not two sentences


def _add(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))
