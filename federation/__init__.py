"""Federated studies: a model trained across sites on Flower, governed like a request.

Sites register their own source datasets under their own stewards; a study names the sites, the
features and target, the model and its client-level DP; a privacy officer and every site's steward
approve it; a Celery task supervises the Flower run (federation.runtime) and debits each site's
ledger exactly what the accountant reports. docs/federation.md says what each guarantee covers.
"""
