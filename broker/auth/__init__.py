"""Authentication: OAuth 2.0 client credentials with `private_key_jwt`.

Modules, each with one job:

* `jose`: the JWT discipline every verifier shares (bounds, header, clock).
* `assertions`: verify a client assertion (RFC 7523 §3); pure, no replay check.
* `replay`: the replay-cache interface and its in-process and Redis backends.
* `tokens`: issue and verify the broker's access tokens (RFC 9068).
* `oauth_errors`: the RFC 6749 §5.2 error a token request ends in.
* `token_service`: the token endpoint's pipeline (RFC 6749 §4.4 + RFC 7523 §2.2).
* `metadata`: the RFC 8414 authorization-server metadata document.

The HTTP edge lives in `broker.api.routes.oauth` (token endpoint, metadata,
JWKS) and `broker.api.security` (bearer tokens on API calls).
"""
