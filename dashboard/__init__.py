"""``sandan dashboard``: a live status page for a whole deployment.

It finds the workers through their consumer group (:mod:`dashboard.discovery`), scrapes each
one's ``/metrics`` and ``/status`` (:mod:`dashboard.scrape`), folds every round into an hour of
history (:mod:`dashboard.aggregate`, pure; the arithmetic in :mod:`dashboard.series`) and serves
one self-contained page that updates itself (:mod:`dashboard.app`). See docs/dashboard.md.
"""
