"""Federated studies on Flower's deployment engine (issue 15): the Flower App (`app/`), the
supervisor that runs SuperLink + one SuperNode per site (`supervisor.run_study`), update validation
and the site-level privacy accountant. Django-free, except the site-data reader (`sitedata`)."""

from federation.runtime.supervisor import SiteConfig, StudyResult, StudyRunConfig, run_study

__all__ = ["SiteConfig", "StudyResult", "StudyRunConfig", "run_study"]
