"""Named task families: the registry of task distributions (``register`` / ``make``), the
paper's 7x7 gridworld (Ni & Kamgarpour 2026, arXiv:2601.21845, Section 6) and random CMDPs.

A registered family is a factory of a :class:`safepce.tabular.distributions.TaskDistribution` with
its
training defaults (coverage oracle and radius, safe-policy oracle, episode length), so that every
command can run on it by name (``--family NAME``); ``make(name, **params)`` builds it and records
``{"family": name, **params}`` as its JSON description. Families saved as files (``save_family``
/ ``load_family``: one .npz of stacked arrays with a JSON header) are the family ``file``.

The gridworld is stored in cost form (cost 10 per step in a hazard, budget 1.5 on the discounted
cost). Its kernel is affine in the noise, ``P(p) = P_intended + p (P_domain - P_intended)``, so
building thousands of tasks costs one fused multiply-add each on two cached tensors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sparse

from .cmdp import CMDP, InvalidCMDPError, _frozen_csr
from .errors import UnknownFamilyError, npz_problem
from .evaluate import evaluate
from .linear import system_for
from .policy import uniform_policy

GRID_SIZE = 7
N_STATES = GRID_SIZE * GRID_SIZE
#: Action order of the paper: right, up, left, down as (dx, dy); y grows upward.
ACTION_NAMES = ("right", "up", "left", "down")
ACTION_DELTAS = ((1, 0), (0, 1), (-1, 0), (0, -1))
GOAL_STATE = 6 * GRID_SIZE + 3                      # (x=3, y=6) -> 45
HAZARD_STATES = tuple(sorted(y * GRID_SIZE + x for x in (2, 4) for y in range(1, 5)))
#: the ten test tasks (gridworld noise) of the paper's published Figure 2 (Section 6)
PAPER_TEST_TASKS = (0.33994760, 0.25363799, 0.31864008, 0.30796535, 0.33609112, 0.33084822,
                    0.31335413, 0.30405411, 0.34453611, 0.26760585)
#: constrained optima V_r(pi*) of the gridworld at noise 0.1-0.4 published with the paper
#: (Section 6; gamma 0.9, budget 1.5, the cost constraint active in all)
PAPER_GRIDWORLD_OPTIMA = {0.1: 59.73693, 0.2: 56.43349, 0.3: 51.96282, 0.4: 44.91545}
GOAL_REWARD = 10.0
HAZARD_COST = 10.0


def state_of(x: int, y: int) -> int:
    """Gridworld state index of column x and row y (``s = y * 7 + x``)."""
    return y * GRID_SIZE + x


def coordinates(state: int) -> tuple[int, int]:
    """(x, y) of a gridworld state."""
    return state % GRID_SIZE, state // GRID_SIZE


def _in_grid(x: int, y: int) -> bool:
    return 0 <= x < GRID_SIZE and 0 <= y < GRID_SIZE


@lru_cache(maxsize=1)
def _gridworld_kernels() -> tuple[np.ndarray, np.ndarray]:
    """(P_intended, P_domain): the noise-0 kernel and the uniform-over-noise-domain kernel."""
    intended = np.zeros((N_STATES, 4, N_STATES))
    domain = np.zeros((N_STATES, 4, N_STATES))
    for s in range(N_STATES):
        x, y = coordinates(s)
        neighbours = [state_of(x + dx, y + dy) for dx, dy in ACTION_DELTAS
                      if _in_grid(x + dx, y + dy)]
        for a, (dx, dy) in enumerate(ACTION_DELTAS):
            if s == GOAL_STATE:                     # absorbing: every action stays
                intended[s, a, s] = domain[s, a, s] = 1.0
                continue
            target = state_of(x + dx, y + dy) if _in_grid(x + dx, y + dy) else s
            cells = neighbours if target in neighbours else [*neighbours, target]
            intended[s, a, target] = 1.0
            domain[s, a, cells] = 1.0 / len(cells)
    for array in (intended, domain):
        array.setflags(write=False)
    return intended, domain


@lru_cache(maxsize=4)
def _gridworld_signals(size: int = GRID_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reward, cost, rho) of the ``size x size`` gridworld (:func:`gridworld_layout`)."""
    goal, hazards = gridworld_layout(size)
    n_states = size * size
    reward = np.zeros((n_states, 4))
    reward[goal] = GOAL_REWARD
    cost = np.zeros((n_states, 4))
    cost[list(hazards)] = HAZARD_COST
    rho = np.ones(n_states)
    rho[list(hazards)] = 0.0
    rho /= rho.sum()
    return reward, cost, rho


#: the gridworld's noise models: "code" (the authors' code, the default) and "text" (Section 6)
NOISE_MODELS = ("code", "text")


def gridworld_kernel(noise, noise_model: str = "code") -> np.ndarray:
    """Transition kernel(s) of the gridworld at ``noise`` (scalar -> (S,A,S); (n,) -> (n,S,A,S)).

    ``noise_model="code"`` (the authors' code, used by every number of this toolkit unless
    stated): the intended cell gets ``(1 - p) + p/|D|`` and every other cell of the noise domain
    ``p/|D|`` (D = in-grid 4-neighbours, plus the intended cell if it is not one of them).
    ``noise_model="text"`` (Section 6 of the paper, p. 8): with probability 1 - p the intended
    action, with probability p/4 each of the four actions, a move off the grid staying put.
    """
    if noise_model not in NOISE_MODELS:
        raise InvalidCMDPError("noise_model", f"one of {NOISE_MODELS}",
                               detail=f"got {noise_model!r}")
    p = np.asarray(noise, dtype=np.float64)
    valid = (p >= 0.0) & (p <= 1.0)
    if not np.all(valid):
        index = tuple(int(i) for i in np.argwhere(~valid)[0]) if p.ndim else None
        raise InvalidCMDPError("noise", "a probability in [0, 1]", index=index,
                               detail=f"got {float(p[index] if p.ndim else p)!r}")
    intended, domain = _gridworld_kernels()
    if noise_model == "text":
        domain = np.broadcast_to(intended.mean(axis=1, keepdims=True), intended.shape)
    return intended + p[..., None, None, None] * (domain - intended)


def gridworld(noise: float, gamma: float = 0.9, budget: float = 1.5,
              noise_model: str = "code") -> CMDP:
    """The paper's 7x7 gridworld (Section 6 and App. H.1 of the paper), cost form.

    Goal 45 (x=3, y=6) is absorbing with reward 10 per step; hazards x in {2, 4}, y in 1..4 cost 10
    per step; rho is uniform over the 41 non-hazard states; feasible iff discounted cost <= budget.
    ``noise_model``: the authors' code's ("code", default) or Section 6's ("text"), see
    :func:`gridworld_kernel`.
    """
    reward, cost, rho = _gridworld_signals()
    return CMDP(P=gridworld_kernel(float(noise), noise_model), r=reward, cost=cost,
                budget=budget, rho=rho, gamma=gamma)


#: the wind of :func:`gridworld_slip_wind_kernel` blows east (x + 1)
WIND_DELTA = (1, 0)
#: energy per step of :func:`gridworld_energy` by action (right, up, left, down) outside the goal:
#: climbing costs most, descending least
ENERGY_PER_ACTION = (0.5, 1.0, 0.5, 0.25)


@lru_cache(maxsize=1)
def _gridworld_wind_kernel() -> np.ndarray:
    """P_wind: the agent is blown one cell east of where it stands, whatever its action (a move
    off the grid stays put; the goal absorbs)."""
    wind = np.zeros((N_STATES, 4, N_STATES))
    for s in range(N_STATES):
        x, y = coordinates(s)
        nx, ny = x + WIND_DELTA[0], y + WIND_DELTA[1]
        wind[s, :, s if s == GOAL_STATE or not _in_grid(nx, ny) else state_of(nx, ny)] = 1.0
    wind.setflags(write=False)
    return wind


def gridworld_slip_wind_kernel(slip, wind) -> np.ndarray:
    """Kernel of the 7x7 gridworld with two noises: with probability ``slip`` the move lands
    uniformly on the noise domain (as :func:`gridworld_kernel`'s "code" model), with
    probability ``wind`` the agent is blown one cell east instead of moving, otherwise the
    intended move: ``P = P_int + slip (P_dom - P_int) + wind (P_wind - P_int)``, affine in
    (slip, wind); valid for slip, wind >= 0 with slip + wind <= 1."""
    slip, wind = float(slip), float(wind)
    if not (slip >= 0 and wind >= 0 and slip + wind <= 1):
        raise InvalidCMDPError("slip, wind", "non-negative probabilities with slip + wind <= 1",
                               detail=f"got slip={slip!r}, wind={wind!r}")
    intended, domain = _gridworld_kernels()
    return intended + slip * (domain - intended) + wind * (_gridworld_wind_kernel() - intended)


def gridworld_slip_wind(slip: float, wind: float, gamma: float = 0.9,
                        budget: float = 1.5) -> CMDP:
    """The paper's 7x7 gridworld (reward, hazard cost, rho and budget of :func:`gridworld`)
    with the two-parameter kernel :func:`gridworld_slip_wind_kernel`."""
    reward, cost, rho = _gridworld_signals()
    return CMDP(P=gridworld_slip_wind_kernel(slip, wind), r=reward, cost=cost, budget=budget,
                rho=rho, gamma=gamma)


def gridworld_energy(noise: float, gamma: float = 0.9, budget: float = 1.5,
                     energy_budget: float = 3.0) -> CMDP:
    """The paper's 7x7 gridworld (kernel :func:`gridworld_kernel`, "code" model) with two
    constraints: the hazard cost of :func:`gridworld` (budget ``budget``) and an energy cost per
    move outside the goal, :data:`ENERGY_PER_ACTION` by action (budget ``energy_budget``, on the
    discounted energy)."""
    reward, cost, rho = _gridworld_signals()
    energy = np.broadcast_to(np.asarray(ENERGY_PER_ACTION), (N_STATES, 4)).copy()
    energy[GOAL_STATE] = 0.0
    return CMDP(P=gridworld_kernel(float(noise)), r=reward, cost=np.stack([cost, energy], -1),
                budget=np.array([budget, energy_budget]), rho=rho, gamma=gamma)


def gridworld_layout(size: int) -> tuple[int, tuple[int, ...]]:
    """(goal, hazards) of the ``size x size`` gridworld by the 7x7 layout's rules: the goal in the
    middle of the top row, ``(size // 2, size - 1)``; hazard columns either side of the goal's,
    ``x = size // 2 -+ 1``, on rows ``1 .. size - 3``. ``size = 7`` gives the paper's (45; x in
    {2, 4}, y in 1..4)."""
    size = int(size)
    if size < 4:
        raise InvalidCMDPError("size", "an integer >= 4 (hazard rows 1..size-3 must exist)",
                               detail=f"got {size!r}")
    middle = size // 2
    goal = (size - 1) * size + middle
    hazards = tuple(sorted(y * size + x for x in (middle - 1, middle + 1)
                           for y in range(1, size - 2)))
    return goal, hazards


@lru_cache(maxsize=4)
def _sparse_gridworld_kernels(size: int) -> tuple[sparse.csr_array, sparse.csr_array]:
    """(P_intended, P_domain) of the ``size x size`` gridworld as (S*4, S) CSR matrices, built
    by the rules of :func:`_gridworld_kernels` without any (S, A, S) array."""
    goal, _ = gridworld_layout(size)
    n_states = size * size
    x, y = np.arange(n_states) % size, np.arange(n_states) // size
    deltas = np.array(ACTION_DELTAS)
    nx, ny = x[:, None] + deltas[:, 0], y[:, None] + deltas[:, 1]             # (S, 4)
    inside = (nx >= 0) & (nx < size) & (ny >= 0) & (ny < size)
    neighbour = np.where(inside, ny * size + nx, -1)                           # (S, 4)
    target = np.where(inside, neighbour, np.arange(n_states)[:, None])         # (S, A)
    rows_i, cols_i, rows_d, cols_d, vals_d = [], [], [], [], []
    pairs = np.arange(n_states)[:, None] * 4 + np.arange(4)                    # (S, A)
    # intended: one cell per pair (the goal absorbs)
    target = target.copy()
    target[goal] = goal
    rows_i, cols_i = pairs.reshape(-1), target.reshape(-1)
    # domain: the in-grid neighbours, plus the intended cell when it is off-grid (stays put)
    count = inside.sum(axis=1)                                                 # (S,)
    for a in range(4):
        off = ~inside[:, a]                            # intended move leaves the grid
        size_a = count + off
        for k in range(4):
            keep = inside[:, k]
            rows_d.append(pairs[keep, a])
            cols_d.append(neighbour[keep, k])
            vals_d.append(1.0 / size_a[keep])
        rows_d.append(pairs[off, a])
        cols_d.append(np.flatnonzero(off))
        vals_d.append(1.0 / size_a[off])
    rows_d, cols_d, vals_d = (np.concatenate(v) for v in (rows_d, cols_d, vals_d))
    at_goal = rows_d // 4 == goal
    rows_d = np.concatenate([rows_d[~at_goal], pairs[goal]])
    cols_d = np.concatenate([cols_d[~at_goal], np.full(4, goal)])
    vals_d = np.concatenate([vals_d[~at_goal], np.ones(4)])
    shape = (n_states * 4, n_states)
    intended = sparse.csr_array((np.ones(rows_i.size), (rows_i, cols_i)), shape=shape)
    domain = sparse.csr_array((vals_d, (rows_d, cols_d)), shape=shape)
    for matrix in (intended, domain):
        matrix.sum_duplicates()
    return intended, domain


def sparse_gridworld(noise: float, size: int, gamma: float = 0.9, budget: float = 1.5) -> CMDP:
    """The ``size x size`` gridworld (layout :func:`gridworld_layout`, same dynamics, reward,
    cost and rho rules as :func:`gridworld`) with a sparse kernel: ``size = 7`` gives the paper's
    task exactly (every entry of P equal), ``size = 316`` about 10^5 states."""
    p = float(noise)
    if not 0.0 <= p <= 1.0:
        raise InvalidCMDPError("noise", "a probability in [0, 1]", detail=f"got {p!r}")
    reward, cost, rho = _gridworld_signals(int(size))
    intended, domain = _sparse_gridworld_kernels(int(size))
    return CMDP(P=intended + p * (domain - intended), r=reward, cost=cost, budget=budget,
                rho=rho, gamma=gamma)


def random_sparse_cmdp(n_states: int, seed, n_actions: int = 4, n_successors: int = 10,
                       gamma: float = 0.9, budget: float | None = None) -> CMDP:
    """A random sparse CMDP: each pair moves to ``n_successors`` distinct states drawn uniformly
    with Dirichlet(1) probabilities; reward uniform on [0, 1] and cost the mean of the reward and
    an independent uniform (rewarding actions cost more, so the constraint binds); rho uniform.
    The default budget is the uniform policy's exact cost, so the task is feasible. Built
    without any dense (S, A, S) array (S = 10^5 in about 3 s, most of it the budget's solve)."""
    for name, value in (("n_states", n_states), ("n_actions", n_actions),
                        ("n_successors", n_successors)):
        if int(value) != value or value < 1:
            raise InvalidCMDPError(name, "a positive integer", detail=f"got {value!r}")
    if n_successors > n_states:
        raise InvalidCMDPError("n_successors", f"at most n_states = {n_states}",
                               detail=f"got {n_successors}")
    rng = np.random.default_rng(seed)
    n_pairs = n_states * n_actions
    nnz = n_pairs * n_successors
    # built in blocks of pairs straight into the CSR arrays (the draws are the same numbers as
    # one draw of every pair at once): no (pairs x successors) int64 or float64 temporaries
    # beside them (S = 10^6: 0.5 GB of kernel instead of 4 GB at the peak)
    indices = np.empty(nnz, dtype=np.int32 if n_states < 2**31 else np.int64)
    data = np.empty(nnz)
    block = max(1, 2**20 // n_successors)
    offsets = np.arange(n_successors)
    for start in range(0, n_pairs, block):
        rows = min(block, n_pairs - start)
        # distinct successors: a sorted draw with replacement from [0, S - k] plus 0..k-1
        draws = np.sort(rng.integers(0, n_states - n_successors + 1, (rows, n_successors)),
                        axis=1)
        indices[start * n_successors:(start + rows) * n_successors] = (draws + offsets).ravel()
    for start in range(0, n_pairs, block):
        rows = min(block, n_pairs - start)
        weights = rng.exponential(size=(rows, n_successors))
        weights /= weights.sum(axis=1, keepdims=True)
        data[start * n_successors:(start + rows) * n_successors] = weights.ravel()
    P = sparse.csr_array((data, indices, np.arange(0, nnz + 1, n_successors)),
                         shape=(n_pairs, n_states))
    P.has_canonical_format = True          # sorted, distinct column indices by construction
    r = rng.random((n_states, n_actions))
    cost = 0.5 * (r + rng.random((n_states, n_actions)))
    rho = np.full(n_states, 1.0 / n_states)
    task = CMDP(_frozen_csr(P), r, cost, 0.0, rho, gamma)
    if budget is None:                     # the uniform policy's exact cost (one solve)
        uniform = uniform_policy(n_states, n_actions)
        budget = float(rho @ system_for(task, policy=uniform).solve(cost.mean(axis=1)))
    return task.with_budget(budget)



def random_cmdp(n_states: int, n_actions: int, seed, n_constraints: int | None = None,
                gamma: float = 0.9, concentration: float = 1.0, budget=None) -> CMDP:
    """A random CMDP for tests: Dirichlet(concentration) transition rows and initial distribution,
    rewards and costs uniform on [0, 1].

    ``n_constraints=None`` gives an (S, A) cost and a scalar budget; an integer K gives (S, A, K).
    The default budget is the uniform policy's exact cost value, so the task is feasible (the
    uniform policy meets it with equality) and the constraint is often active at the optimum.
    """
    for name, value in (("n_states", n_states), ("n_actions", n_actions)):
        if int(value) != value or value < 1:
            raise InvalidCMDPError(name, "a positive integer", detail=f"got {value!r}")
    if not concentration > 0:
        raise InvalidCMDPError("concentration", "a positive number",
                               detail=f"got {concentration!r}")
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(n_states, concentration), size=(n_states, n_actions))
    rho = rng.dirichlet(np.full(n_states, concentration))
    r = rng.random((n_states, n_actions))
    cost_shape = (n_states, n_actions) if n_constraints is None else (
        n_states, n_actions, n_constraints)
    cost = rng.random(cost_shape)
    if budget is None:
        placeholder = 0.0 if n_constraints is None else np.zeros(n_constraints)
        probe = CMDP(P, r, cost, placeholder, rho, gamma)
        budget = evaluate(probe, uniform_policy(n_states, n_actions)).cost_value
    return CMDP(P, r, cost, budget, rho, gamma)


# --- families saved as files --------------------------------------------------------------------

FAMILY_FILE_FORMAT = "safepce-family"


def save_family(path: str | Path, tasks: Sequence[CMDP], weights=None) -> Path:
    """Save a finite family (the uniform, or ``weights``, distribution over ``tasks``; all of one
    (S, A, K, gamma)) as one .npz: stacked P, r, cost, budget, rho and a JSON header."""
    from .distributions import FiniteUniform

    family = FiniteUniform(tasks, weights)      # validates shapes and weights
    header = {"format": FAMILY_FILE_FORMAT, "version": 1, "gamma": family.tasks[0].gamma,
              "n_tasks": len(tasks),
              "weights": None if family.weights is None else family.weights.tolist()}
    path = Path(path)
    with path.open("wb") as handle:
        np.savez_compressed(handle, header=np.array(json.dumps(header)),
                            P=np.stack([t.P for t in family.tasks]),
                            r=np.stack([t.r for t in family.tasks]),
                            cost=np.stack([t.cost for t in family.tasks]),
                            budget=np.stack([np.asarray(t.budget) for t in family.tasks]),
                            rho=np.stack([t.rho for t in family.tasks]))
    return path


#: the arrays of a family file and the ranks each may have (the leading axis counts tasks)
FAMILY_ARRAYS = {"P": (4,), "r": (3,), "cost": (3, 4), "budget": (1, 2), "rho": (2,)}


def _check_declared_sizes(path: Path) -> None:
    """Read each array's .npy header in the archive (not its data) and refuse one that declares
    more bytes than the archive holds for it (a damaged or hostile file would otherwise make
    ``np.load`` allocate what it declares)."""
    import zipfile

    fmt = np.lib.format
    with zipfile.ZipFile(path) as archive:
        for name in ("header", *FAMILY_ARRAYS):
            try:
                info = archive.getinfo(f"{name}.npy")
            except KeyError:
                raise UnknownFamilyError(f"--family-file: {path} has no array {name!r}; expected "
                                         "a file written by save_family") from None
            with archive.open(info) as handle:
                version = fmt.read_magic(handle)
                reader = {(1, 0): fmt.read_array_header_1_0,
                          (2, 0): fmt.read_array_header_2_0}.get(version)
                if reader is None:
                    continue                    # np.load below judges other versions
                shape, _, dtype = reader(handle)
            need = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if need > info.file_size:
                raise UnknownFamilyError(
                    f"--family-file: {path}: array {name} declares shape {tuple(shape)} "
                    f"({need:,} bytes) but the file holds {info.file_size:,} bytes for it; the "
                    "file is damaged")


def load_family(path: str | Path):
    """The finite family saved by :func:`save_family` (a
    :class:`safepce.tabular.distributions.FiniteUniform`). A missing, damaged or foreign file
    is refused with an :class:`UnknownFamilyError` naming the file and what is wrong (its
    header, an array's rank, task counts that disagree, a declared size the file does not
    hold) before any array is built; the tasks themselves are then validated as CMDPs."""
    import zipfile

    from .distributions import FiniteUniform

    path = Path(path)
    problem = npz_problem(path)
    if problem:
        raise UnknownFamilyError(f"--family-file: {path} {problem}; expected a file written by "
                                 "save_family")
    try:
        _check_declared_sizes(path)
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            arrays = {k: data[k] for k in FAMILY_ARRAYS}
    except UnknownFamilyError:
        raise
    except (OSError, ValueError, KeyError, EOFError, MemoryError, zipfile.BadZipFile) as exc:
        raise UnknownFamilyError(f"--family-file: {path} is not a readable safepce family file "
                                 f"({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FAMILY_FILE_FORMAT:
        raise UnknownFamilyError(f"--family-file: {path} is not a safepce family file (its "
                                 "header is not a safepce-family object)")
    if "gamma" not in header:
        raise UnknownFamilyError(f"--family-file: {path}: the header has no gamma")
    for name, ranks in FAMILY_ARRAYS.items():
        if arrays[name].ndim not in ranks:
            raise UnknownFamilyError(
                f"--family-file: {path}: array {name} has shape {arrays[name].shape}; expected "
                + " or ".join(f"{r}-D" for r in ranks) + " (tasks first)")
    counts = {name: array.shape[0] for name, array in arrays.items()}
    declared = header.get("n_tasks", counts["P"])
    if len(set(counts.values())) != 1 or declared != counts["P"]:
        raise UnknownFamilyError(
            f"--family-file: {path}: the arrays hold different numbers of tasks ("
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + f"; header n_tasks {declared})")
    if counts["P"] == 0:
        raise UnknownFamilyError(f"--family-file: {path} holds no task")
    tasks = [CMDP(arrays["P"][i], arrays["r"][i], arrays["cost"][i], arrays["budget"][i],
                  arrays["rho"][i], header["gamma"]) for i in range(counts["P"])]
    return FiniteUniform(tasks, header.get("weights"))


#: the registry's names, kept importable from here (``safepce.tabular.registry`` holds them)
_REGISTRY_NAMES = ("FAMILIES", "FamilySpec", "family_names", "family_spec", "make", "register")


def __getattr__(name: str):
    if name in _REGISTRY_NAMES:
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
