"""The proofs wing: a symbolic quantizer catalogue and the PC++ / SPR certificates.

* :mod:`.pairs` -- forward/backward quantizer pairs defined once in SymPy (BinaryConnect, BNN,
  BNN+, ProxConnect, BNN++, ProxQuant, ternary, shift), looked up by name, with NumPy twins.
* :mod:`.checks` -- the generic checks of the PC++ decomposition criterion (Lu, Yu, Li,
  Partovi Nia, NeurIPS 2023, arXiv:2402.17710; the suite's working formalization), each returning
  a :class:`Certificate`.
* :mod:`.synthesis` -- ``synthesize(backward=B, prox=P)``: ``F = B o P`` with its certificate.
* :mod:`.spr` -- the SPR closed form derived symbolically.
* :mod:`.parse` -- safe parsing of user expressions; :mod:`.report` -- tables, Markdown, JSON;
  :mod:`.cli` -- ``proxcompress verify``.

Names are resolved lazily so that importing this package (e.g. for the CLI) does not load SymPy.
"""

from __future__ import annotations

from proxcompress.lazy import lazy_getattr

_PUBLIC = {
    "Pair": "pairs",
    "Facts": "pairs",
    "ProxLink": "pairs",
    "NumericTwin": "pairs",
    "catalogue": "pairs",
    "get_pair": "pairs",
    "build_pair": "pairs",
    "pair_names": "pairs",
    "register": "pairs",
    "signswish": "pairs",
    "Certificate": "certificate",
    "Counterexample": "certificate",
    "Report": "certificate",
    "CHECKS": "checks",
    "CheckOptions": "checks",
    "certify": "checks",
    "Synthesis": "synthesis",
    "make_pair": "synthesis",
    "synthesize": "synthesis",
    "parse_expression": "parse",
    "derive_spr": "spr",
    "spr_closed_form": "spr",
    "render_markdown": "report",
    "render_text": "report",
    "to_json": "report",
    "x": "analysis",
    "mu": "analysis",
}

__all__ = sorted(_PUBLIC)


#: result and record types: returned by the API, not entry points (their construction is not
#: argument-checked)
_RESULTS = ("Certificate", "Counterexample", "NumericTwin", "Report", "Synthesis")

__getattr__ = lazy_getattr("proxcompress.proofs", _PUBLIC, _RESULTS)
