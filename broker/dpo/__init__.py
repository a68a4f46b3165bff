"""The DPO's dashboard (issue 4, point 6; contract.md "GET /dpo"; domain.md U3).

A server-rendered page for a person, the functionaris gegevensbescherming,
not for a machine:

* `aggregate`: pure functions over audit entries (counts over time, refusals
  by reason, disclosures by partner and legal basis, special-category
  blocks, search by case or subject pseudonym);
* `session`: the browser session, an access token in a cookie, verified on
  every request;
* `dashboard`: gathers what the pages show from the broker's services (the
  only module here that reads anything);
* `views`: HTML with every value escaped, an SVG chart drawn here, one
  style sheet served by the broker; no JavaScript, no external resources.

The HTTP edge is `broker/api/routes/dpo.py`; `ketenbroker dpo token` prints
the access token the DPO pastes into the login form.
"""
