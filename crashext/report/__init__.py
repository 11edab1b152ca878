"""The HTML report: one self-contained page with the verdict and pictures.

:mod:`.data` assembles what the page shows from the analyses (plain data);
:mod:`.plots` draws it with matplotlib's SVG backend; :mod:`.page` fills the
Jinja2 template (``templates/report.html.j2``).  matplotlib and Jinja2 are
the optional extra ``crashext[report]``: without them the rest of crashext
works and :func:`require` says how to get them.
"""
