"""The allocation model as an independent linear program (HiGHS through SciPy), to check the solver against."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from services.matching.allocation import tier_capacities, tier_values
from services.matching.policy import Policy
from services.matching.scoring import Candidates


def lp_objective(remaining: np.ndarray, available: np.ndarray, cand: Candidates, policy: Policy, tiered: bool) -> float:
    """The same model as a linear program: maximise Σ score·x + Σ value·y, solved by HiGHS."""
    m, n, n_lots = len(cand), len(remaining), len(available)
    caps = tier_capacities(remaining, policy, tiered=tiered)
    values = tier_values(policy, tiered=tiered) / 100
    k = caps.shape[1]
    scores = np.rint(cand.score * 100) / 100
    c = -np.concatenate([scores, np.tile(values, n)])
    pair_cap = np.minimum(available[cand.lot], remaining[cand.line])
    lot_rows = sp.coo_matrix((np.ones(m), (cand.lot, np.arange(m))), shape=(n_lots, m + n * k))
    y_cols = m + np.arange(n * k)
    balance = sp.coo_matrix(
        (
            np.concatenate([np.ones(m), -np.ones(n * k)]),
            (np.concatenate([cand.line, np.repeat(np.arange(n), k)]), np.concatenate([np.arange(m), y_cols])),
        ),
        shape=(n, m + n * k),
    )
    bounds = [(0, int(u)) for u in pair_cap] + [(0, int(u)) for u in caps.ravel()]
    res = linprog(
        c, A_ub=lot_rows.tocsr(), b_ub=available, A_eq=balance.tocsr(), b_eq=np.zeros(n), bounds=bounds, method="highs"
    )
    assert res.status == 0, res.message
    return float(-res.fun)
