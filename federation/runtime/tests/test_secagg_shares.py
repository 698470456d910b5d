"""SecAgg+'s parameters for a study: Flower accepts them for every site count and quorum the
portal files (a study with min_sites equal to its sites used to fail when the run started)."""

from __future__ import annotations

import pytest
from flwr.server.workflow import SecAggPlusWorkflow

from federation.runtime.app.sgfl.server_app import StudyFailed, secagg_shares


@pytest.mark.parametrize("sites", [2, 3, 4, 5, 8])
def test_every_quorum_gives_parameters_flower_accepts(sites: int) -> None:
    for min_sites in range(2, sites + 1):
        num_shares, threshold = secagg_shares(sites=sites, min_sites=min_sites)
        SecAggPlusWorkflow(num_shares=num_shares, reconstruction_threshold=threshold)  # raises if refused
        # A round goes on with the quorum alive (each live site counts itself among its live
        # neighbours), and the threshold is as high as Flower allows up to that quorum.
        assert 2 <= threshold <= min_sites
        assert threshold == min(min_sites, sites - 1) or (sites == 2 and threshold == 2)


def test_the_old_parameters_were_refused_when_every_site_is_needed() -> None:
    # What server_app asked for before: num_shares=n, threshold=min(min_sites, n).
    with pytest.raises(ValueError, match="must be less than `num_shares`"):
        SecAggPlusWorkflow(num_shares=3, reconstruction_threshold=3)


def test_one_site_cannot_aggregate_securely() -> None:
    with pytest.raises(StudyFailed):
        secagg_shares(sites=1, min_sites=1)
