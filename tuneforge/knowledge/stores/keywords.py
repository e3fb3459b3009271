"""The words a keyword (BM25) search looks for: one analysis of the query for every store.

    query_terms("What does the Regulator require of an Authorised Person?")  # ['regulator', 'require', ...]

Each store ORs these terms through its own full-text engine (SQLite FTS5 with porter stemming, PostgreSQL's
'english' configuration, RediSearch's English stemmer), so the three see the same query: lowercased `\\w+`
words, each once, without English stopwords. PostgreSQL and RediSearch drop stopwords by themselves; FTS5 does
not, and there the question words of a natural-language query ("what", "how", "does"), rare in the documents
and so given a high IDF, outranked the words that name the subject.

STOPWORDS is the Snowball English list that PostgreSQL's 'english' configuration uses; it contains RediSearch's
default list, so no store drops a word the others keep.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+")
MAX_QUERY_TERMS = 256  # a 20,000-character query would otherwise build a query of thousands of ORs

STOPWORDS = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself
    it its itself they them their theirs themselves what which who whom this that these those am is are was were be
    been being have has had having do does did doing a an the and but if or because as until while of at by for with
    about against between into through during before after above below to from up down in out on off over under
    again further then once here there when where why how all any both each few more most other some such no nor not
    only own same so than too very s t can will just don should now
    """.split()
)


def query_terms(text: str) -> list[str]:
    """The query's distinct lowercased words in order, stopwords removed; all of them if every word is one (a
    query of only stopwords still finds what it names in SQLite, and returns nothing elsewhere)."""
    words = list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))
    kept = [word for word in words if word not in STOPWORDS]
    return (kept or words)[:MAX_QUERY_TERMS]
