"""Email authentication: SPF, DKIM, DMARC, ARC and iprev on the way in; DKIM signing, ARC
sealing and SRS on the way out.

Pure decisions over messages and DNS answers: every check asks DNS through an async lookup
function (:mod:`mailroom.authentication.dns`; the server gives it
:meth:`mailroom.resolver.Resolver.lookup`) and returns a value. Policy
(:mod:`mailroom.policy.authentication`) turns the values into catalogue replies, the store
writes the ``Authentication-Results`` header they make, and delivery signs and seals.

One module per job: ``spf``, ``dkim``, ``dmarc``, ``arc``, ``iprev`` (the checks), ``results``
(the header), ``checks`` (one session's checks, within their time budgets), ``keys`` (DKIM keys
on disk), ``signing`` (DKIM signatures and ARC seals), ``srs`` (the Sender Rewriting Scheme),
``records`` (the DNS records a domain should publish), ``settings`` (``[authentication]``).
"""
