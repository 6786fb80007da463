# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Model criticism with poutine
#
# A fitted model is only as good as the data it can reproduce. This tutorial shows
# the machinery Pyro gives for asking that question, and what a failed answer looks
# like.
#
# 1. **Effect handlers**: `trace`, `condition`, `replay` and `block`, each shown on
#    one small model, with what the trace records.
# 2. **Replaying latents**: the Pyro counterpart of Edward's interceptors.
# 3. **Posterior predictive checks** with `pyro.infer.Predictive` and test
#    statistics.
# 4. **A failed check**: probabilistic PCA with too few latent dimensions, next to
#    the correctly specified model passing the same check.
#
# It assumes PyTorch and the basics of tutorial 1 (sample sites, plates, guides, the
# ELBO), but repeats the essentials. `PPL_MODELS_TUTORIAL_QUICK=1` shrinks the
# experiment; the prose quotes the full run.

# %%
# %matplotlib inline
# ruff: noqa: B018 (a figure left as a cell's last expression is how a notebook shows it)
import os
import re
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from matplotlib.figure import Figure
from pyro import poutine
from pyro.infer import Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.poutine.util import site_is_subsample

from ppl_models.criticism import (
    exceedance,
    posterior_predictive_check,
    replay_latents,
    replicate,
)
from ppl_models.device import resolve_device
from ppl_models.inference import make_objective, run_svi
from ppl_models.models.ppca import PPCA, fit_ppca
from ppl_models.plots import plot_ppc, save_figure

QUICK = os.environ.get("PPL_MODELS_TUTORIAL_QUICK") == "1"
DEVICE = "auto"  # CUDA when there is a GPU, else the CPU (used by the PPCA fits)
device = resolve_device(DEVICE)
# A notebook runs where it lies, in tutorials/; a script from the repository.
HERE = Path.cwd().parent if Path.cwd().name == "tutorials" else Path.cwd()
OUT = Path(os.environ.get("PPL_MODELS_TUTORIAL_OUT", HERE / "tutorials" / "output")) / (
    "03_criticism"
)
OUT.mkdir(parents=True, exist_ok=True)

NUM_OBSERVATIONS = 50  # for the small model
SMALL_STEPS = 300 if QUICK else 1000
PPCA_DATAPOINTS = 1000 if QUICK else 5000
PPCA_STEPS = 500 if QUICK else 3000
# Two axes take longer to settle than one: a smaller step than tutorial 1's 0.05
# keeps the noisy mean-field updates from blurring the fitted spectrum.
PPCA_LR = 0.02
PPC_SAMPLES = 100 if QUICK else 500
SEED = 0
DATA_SEED = 2024  # the small model's data

START = time.perf_counter()
print(f"quick mode: {QUICK}, device: {device}")


def report(name: str, value: float) -> None:
    """Print a key number on a line of its own, `RESULT name = value`."""
    print(f"RESULT {name} = {value:.6g}")


def slug(text: str) -> str:
    """'second eigenvalue' -> 'second_eigenvalue', for RESULT names."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# %% [markdown]
# ## 1. A small model
#
# Observations $y_1, \dots, y_n$ from a Normal with unknown location and scale:
#
# $$
# \mu \sim \mathcal{N}(0, 10^2), \qquad \sigma \sim \mathrm{LogNormal}(0, 1), \qquad
# y_i \mid \mu, \sigma \sim \mathcal{N}(\mu, \sigma^2), \quad i = 1, \dots, n.
# $$
#
# In Pyro each random variable is a **sample site**, `pyro.sample(name, dist)`. The
# observations are a site too, with `obs=y`: it returns the data instead of drawing,
# and adds $\log p(y \mid \mu, \sigma)$ to the joint density. `pyro.plate` says the
# $n$ draws are independent given $\mu$ and $\sigma$, and draws them as one vector.


# %%
def location_scale(y=None, n=None):
    """y (n,) observed, or None to generate n values."""
    n = n if y is None else len(y)
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.LogNormal(0.0, 1.0))
    with pyro.plate("observations", n):
        return pyro.sample("y", dist.Normal(mu, sigma), obs=y)


# The data: draws from N(3, 2^2), with a generator of their own so that no later
# draw of the global random stream repeats them.
generator = torch.Generator().manual_seed(DATA_SEED)
y_obs = 3.0 + 2.0 * torch.randn(NUM_OBSERVATIONS, generator=generator)
print(f"{NUM_OBSERVATIONS} observations, mean {y_obs.mean():.3f}, sd {y_obs.std():.3f}")

# %% [markdown]
# ## 2. Effect handlers
#
# When a Pyro program reaches `pyro.sample`, it does not simply draw. It builds a
# *message* (the site's name, distribution, observed value if any) and sends it
# through a stack of **effect handlers**, the context managers and wrappers of
# `pyro.poutine`. Each handler may read the message, change it (fix the value,
# rescale the log density) or hide it from the handlers further out. With no handler
# installed, the default is to draw from the distribution. Inference algorithms are
# built from these handlers, and so is model criticism.
#
# | handler | what it does to each sample site |
# | --- | --- |
# | `trace` | records it: value, distribution, observed or not, plates, log density |
# | `condition(data=...)` | fixes the named sites to given values, marked observed |
# | `replay(trace=...)` | reuses the values another trace recorded for the same names |
# | `block(hide=... / expose=...)` | hides sites from the handlers outside it |
#
# Handlers wrap a function and return a new function, so they compose:
# `poutine.trace(poutine.condition(model, data))` records a conditioned run.
#
# ### `trace`: record a run
#
# `poutine.trace(fn).get_trace(*args)` runs `fn` and returns a `Trace`, a graph
# whose nodes are the sites. This helper prints what it recorded:


# %%
def show_trace(trace, title: str) -> None:
    """Print every sample site of a trace: value, observed or not, log density."""
    trace.compute_log_prob()
    print(title)
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue  # plates are recorded as sites too; skip them
        value = site["value"].detach()
        shown = (
            f"{float(value):8.3f}"
            if value.dim() == 0
            else f"shape {tuple(value.shape)}, mean {float(value.mean()):.3f}"
        )
        kind = "observed" if site["is_observed"] else "drawn"
        plates = [frame.name for frame in site["cond_indep_stack"]]
        print(
            f"  {name:6s} {kind:8s} {shown:28s} "
            f"log p = {float(site['log_prob_sum'].detach()):9.3f}  plates {plates}"
        )
    print(f"  log joint density: {float(trace.log_prob_sum().detach()):.3f}")


pyro.set_rng_seed(SEED + 1)
prior_trace = poutine.trace(location_scale).get_trace(None, NUM_OBSERVATIONS)
show_trace(prior_trace, "trace of a run that generates data (y=None):")
data_trace = poutine.trace(location_scale).get_trace(y_obs)
show_trace(data_trace, "trace of a run on the data (y observed):")

# %% [markdown]
# Without data all three sites are drawn, `y` included; with data `y` is observed
# and its log density is the likelihood of the data at the drawn $\mu, \sigma$. The
# log joint density $\log p(\mu, \sigma, y)$ is the sum over sites, which is what
# every inference algorithm in Pyro evaluates.
#
# ### `condition`: fix sites to values
#
# `poutine.condition(model, data={"mu": ...})` turns the named sites into observed
# ones with the given values. It is the same as having written `obs=` into the
# model, so data can also be supplied from outside a model that never mentions it.

# %%
pinned = poutine.condition(location_scale, data={"mu": torch.tensor(0.0)})
show_trace(
    poutine.trace(pinned).get_trace(None, NUM_OBSERVATIONS),
    "condition(mu = 0), generating y:",
)
from_outside = poutine.condition(location_scale, data={"y": y_obs})
outside_trace = poutine.trace(from_outside).get_trace(None, NUM_OBSERVATIONS)
observed = bool(outside_trace.nodes["y"]["is_observed"])
is_data = torch.equal(outside_trace.nodes["y"]["value"], y_obs)
print("condition(y = data) observes y:", observed, "| the value is the data:", is_data)
report("condition_observes_y", float(observed))
report("condition_value_is_data", float(is_data))

# %% [markdown]
# With $\mu$ pinned at 0, the generated $y$ centre on 0, and $\mu$'s prior density
# at 0 is counted in the joint, as for any observation.
#
# ### A posterior to criticise
#
# To have something to replay, fit a **guide**: a program with the same latent
# sites whose parameters define $q(\mu, \sigma) \approx p(\mu, \sigma \mid y)$.
# `AutoNormal` builds one automatically, an independent Normal for each latent (for
# $\sigma$, on $\log\sigma$, so it stays positive). Fitting maximises the ELBO
#
# $$
# \mathcal{L}(q) = \mathbb{E}_{q}\big[\log p(y, \mu, \sigma) - \log q(\mu, \sigma)\big]
#   = \log p(y) - \mathrm{KL}\big(q \,\|\, p(\mu, \sigma \mid y)\big)
# $$
#
# by stochastic gradient steps on $-\mathcal{L}$, with the package's `make_objective`
# (the ELBO as a `torch.nn.Module`) and `run_svi` (an Adam loop). This tiny model
# stays on the CPU.

# %%
pyro.set_rng_seed(SEED + 2)
guide = AutoNormal(location_scale)
objective = make_objective(location_scale, guide, Trace_ELBO(), y_obs)
optimizer = torch.optim.Adam(objective.parameters(), lr=0.05)
small_losses = run_svi(objective, optimizer, SMALL_STEPS, y_obs, progress=False)
posterior_median = guide.median(y_obs)
print(
    f"after {SMALL_STEPS} steps: -ELBO = {float(small_losses[-20:].mean()):.2f}; "
    f"posterior median mu = {float(posterior_median['mu']):.3f}, "
    f"sigma = {float(posterior_median['sigma']):.3f}"
)

# %% [markdown]
# ### `replay`: reuse the values of another trace
#
# `poutine.replay(model, trace=guide_trace)` runs the model with every site that
# also appears in `guide_trace` set to the value recorded there. Unlike `condition`,
# the sites stay *latent*: their density is still that of the model, now evaluated
# at the guide's values. That is exactly how an ELBO is estimated. Draw $(\mu,
# \sigma)$ from the guide, replay them through the model, and subtract the two log
# densities:
#
# $$
# \widehat{\mathcal{L}} = \log p(y, \mu, \sigma) - \log q(\mu, \sigma),
# \qquad (\mu, \sigma) \sim q.
# $$

# %%
pyro.set_rng_seed(SEED + 3)
guide_trace = poutine.trace(guide).get_trace(y_obs)
replayed = poutine.trace(poutine.replay(location_scale, trace=guide_trace))
model_trace = replayed.get_trace(y_obs)
show_trace(model_trace, "model replayed with one draw from the guide:")
same_mu = torch.equal(
    model_trace.nodes["mu"]["value"], guide_trace.nodes["mu"]["value"]
)
print("mu is the guide's draw:", same_mu)
report("replayed_mu_is_guide_draw", float(same_mu))


def one_sample_elbo() -> float:
    """log p(y, mu, sigma) - log q(mu, sigma) at one draw from the guide."""
    q_trace = poutine.trace(guide).get_trace(y_obs)
    p_trace = poutine.trace(poutine.replay(location_scale, trace=q_trace)).get_trace(
        y_obs
    )
    return float(p_trace.log_prob_sum() - q_trace.log_prob_sum())


with torch.no_grad():
    pyro.set_rng_seed(SEED + 4)
    by_hand = sum(one_sample_elbo() for _ in range(PPC_SAMPLES)) / PPC_SAMPLES
    pyro.set_rng_seed(SEED + 4)  # the same draws again
    by_pyro = -Trace_ELBO(num_particles=PPC_SAMPLES).loss(location_scale, guide, y_obs)
print(
    f"ELBO from the same {PPC_SAMPLES} draws: by hand {by_hand:.6f}, "
    f"Trace_ELBO {by_pyro:.6f}, difference {by_hand - by_pyro:.2g}"
)
report("elbo_by_hand", by_hand)
report("elbo_by_pyro", by_pyro)
report("elbo_by_hand_minus_by_pyro", by_hand - by_pyro)

# %% [markdown]
# Seeded alike, the two see the same draws of $(\mu, \sigma)$, and their estimates
# agree to float rounding: `Trace_ELBO` is this trace-and-replay recipe, with
# gradients.
#
# ### `block`: hide sites from outer handlers
#
# `poutine.block(fn, hide=["y"])` still runs the site, but handlers *outside* the
# block never see it, so an outer `trace` does not record it (`expose=[...]` is the
# opposite: hide everything else). Hiding the observed site leaves a trace whose
# log density is the log prior alone. Blocking also keeps helper computations out
# of inference: the package runs a guide once under `block` to create its
# parameters, so that no outer handler mistakes that run for part of a model.

# %%
blocked = poutine.trace(poutine.block(location_scale, hide=["y"])).get_trace(y_obs)
show_trace(blocked, "block(hide=['y']): the likelihood runs, unrecorded")
report("hidden_y_recorded", float("y" in blocked.nodes))
exposed = poutine.trace(poutine.block(location_scale, expose=["mu"]))
recorded = [
    name
    for name, site in exposed.get_trace(y_obs).nodes.items()
    if site["type"] == "sample"
]
print("block(expose=['mu']) records only:", recorded)
report("exposed_sites_recorded", len(recorded))

# %% [markdown]
# ## 3. Replaying latents: Pyro's interceptors
#
# The lecture criticises its models with Edward2 **interceptors**: a function that
# receives every random-variable constructor call of a model, can change its
# arguments (in particular set its `value` to an inferred one) and then builds the
# variable. Running the model inside `ed.interception(...)` then generates data from
# the inferred latents instead of the prior. `poutine.condition` is the same move in
# Pyro. It intercepts every `pyro.sample` message and, for the named sites, sets
# the value. `ppl_models.criticism.replay_latents(model, latents, *args)` is
# `poutine.trace(poutine.condition(model, data=latents))` run once. Its trace holds
# the latents we supplied and fresh draws of everything else, here a new data set
# from the posterior median of $\mu$ and $\sigma$:

# %%
pyro.set_rng_seed(SEED + 5)
replay_trace = replay_latents(location_scale, posterior_median, None, NUM_OBSERVATIONS)
y_generated = replay_trace.nodes["y"]["value"]
print(
    f"generated from the posterior median: mean {y_generated.mean():.3f}, "
    f"sd {y_generated.std():.3f} (data: {y_obs.mean():.3f}, {y_obs.std():.3f})"
)

# %% [markdown]
# ## 4. Posterior predictive checks
#
# One replay is one data set, which is hard to judge. A **posterior predictive
# check** generates many, each from its own draw of the latents from the fitted
# posterior $q$,
#
# $$
# y^{\mathrm{rep}} \sim \int p(y^{\mathrm{rep}} \mid \mu, \sigma)\,
# q(\mu, \sigma)\; d\mu\, d\sigma,
# $$
#
# and compares a **test statistic** $T$ (a number computed from a data set: mean,
# spread, largest value, ...) of the observed data with its distribution over the
# replicates, through the posterior predictive p-value
#
# $$
# p = \Pr\big(T(y^{\mathrm{rep}}) \ge T(y) \mid y\big).
# $$
#
# $p$ near 0 or 1: the model rarely makes data like ours in this respect. $p$ in
# between: no evidence of a problem *from this statistic*. A check sees only what its
# statistic measures, so pick statistics that probe what the model should get right.
#
# **`pyro.infer.Predictive`** draws the replicates. Given a model and a guide, it
# first draws `num_samples` sets of latents from the guide, then runs the model once
# per set with the latents fixed by `poutine.condition` (section 2), and returns the
# values of the requested sites stacked along a new first dimension.

# %%
pyro.set_rng_seed(SEED + 6)
predictive = Predictive(
    location_scale, guide=guide, num_samples=PPC_SAMPLES, return_sites=["y"]
)
y_replicated = predictive(None, NUM_OBSERVATIONS)["y"]
print(f"replicates: {tuple(y_replicated.shape)} (num_samples, n)")
t_observed = y_obs.max()
t_replicated = y_replicated.max(dim=1).values
p_by_hand = float(exceedance(t_replicated, t_observed).mean())
print(f"largest value: observed {t_observed:.3f}, p = {p_by_hand:.3f}")
report("p_by_hand_largest_value", p_by_hand)

# %% [markdown]
# `exceedance` counts a replicate as 1 if its statistic is larger than the observed
# one and 1/2 on a tie. The package wraps the two steps: `replicate` is the
# `Predictive` call above, and `posterior_predictive_check` evaluates a dictionary
# of statistics and returns a `CheckResult` (observed value, replicated values,
# p-value) for each. `plot_ppc` draws them.


# %%
def skewness(y):
    """Third standardised moment: 0 for any symmetric distribution."""
    centred = y - y.mean()
    return (centred**3).mean() / centred.pow(2).mean() ** 1.5


small_statistics = {
    "mean": lambda y: y.mean(),
    "median": lambda y: y.median(),
    "standard deviation": lambda y: y.std(),
    "skewness": skewness,
    "smallest value": lambda y: y.min(),
    "largest value": lambda y: y.max(),
}
pyro.set_rng_seed(SEED + 6)  # as above: the same replicates, so the same p-values
y_replicated = replicate(
    location_scale, guide, (None, NUM_OBSERVATIONS), num_samples=PPC_SAMPLES, site="y"
)
small_checks = posterior_predictive_check(y_obs, y_replicated, small_statistics)
for name, check in small_checks.items():
    print(f"{name:20s} observed {check.observed:7.3f}   p = {check.p_value:.3f}")
    report(f"small_ppc_p_{slug(name)}", check.p_value)

# %%
fig = plot_ppc(small_checks, title="Location-scale model: posterior predictive checks")
save_figure(fig, OUT / "small_model_ppc.png")
fig

# %% [markdown]
# The data were drawn from a Normal, so the model passes: every observed statistic
# sits among the replicated ones.
#
# ## 5. What a failed check looks like
#
# Now a model that is wrong in a known way. Probabilistic PCA (tutorial 1) says
# that each data point is $x_n = W z_n + \varepsilon_n$ with $z_n \sim
# \mathcal{N}(0, I_K)$ and noise $\varepsilon_n \sim \mathcal{N}(0, \sigma^2 I)$,
# $\sigma$ known. Its covariance $W W^\top + \sigma^2 I$ has $K$ large eigenvalues
# and the rest equal to $\sigma^2$.
#
# The data here are 3-dimensional with **two** real axes. We fit PPCA twice with
# mean-field VI: with `latent_dim=2` (correct) and with `latent_dim=1` (too small).
# The second model has nowhere to put the second direction of spread except the
# noise, whose scale it is not allowed to change.
#
# To simulate, take the package's `PPCA` with $K = 2$ and fix its axes with
# `poutine.condition` (through `replay_latents`): $z$ and $x$ are drawn from the
# model, $W$ is ours.

# %%
NOISE_SCALE = 0.5
W_TRUE = torch.tensor([[2.0, 0.0], [1.0, 1.5], [-1.0, 1.0]], device=device)
pyro.set_rng_seed(SEED + 7)
truth = PPCA(data_dim=3, latent_dim=2, noise_scale=NOISE_SCALE).to(device)
x_obs = replay_latents(truth, {"w": W_TRUE}, None, PPCA_DATAPOINTS).nodes["x"]["value"]
eigenvalues = torch.linalg.eigvalsh(torch.cov(x_obs)).flip(0)
# The covariance the model implies, W W^T + sigma^2 I, has these eigenvalues:
true_cov = W_TRUE @ W_TRUE.T + NOISE_SCALE**2 * torch.eye(3, device=device)
true_eigenvalues = torch.linalg.eigvalsh(true_cov).flip(0)
print(f"x: {tuple(x_obs.shape)}")
for label, values in (("cov(x)", eigenvalues), ("W W^T + sigma^2 I", true_eigenvalues)):
    print(f"eigenvalues of {label}: {[round(v, 3) for v in values.tolist()]}")
for rank, value in enumerate(true_eigenvalues.tolist(), start=1):
    report(f"true_eigenvalue_{rank}", value)
report("noise_scale", NOISE_SCALE)

fits = {}
for label, latent_dim in (("good", 2), ("misspecified", 1)):
    fits[label] = fit_ppca(
        x_obs.T,
        inference="meanfield",
        latent_dim=latent_dim,
        noise_scale=NOISE_SCALE,
        mean="zero",  # the model that simulated the data: no mean
        steps=PPCA_STEPS,
        lr=PPCA_LR,
        seed=SEED + 8,
        device=DEVICE,
        progress=False,
    )
    final_loss = float(fits[label].losses[-50:].mean())
    print(
        f"{label:12s} latent_dim={latent_dim}: {fits[label].fit_seconds:.1f} s, "
        f"final -ELBO {final_loss:.0f}"
    )
    report(f"{label}_final_loss", final_loss)

# %% [markdown]
# The ELBO already prefers $K = 2$ (a lower $-$ELBO), but the difference between
# two large numbers does not say *what* is wrong. The check can.
#
# The natural statistics are the eigenvalues of the sample covariance, largest to
# smallest: the variance along each principal direction of the data.


# %%
def eigenvalue(rank: int):
    """The statistic 'rank-th largest eigenvalue of cov(x)' of a (D, N) data set."""
    return lambda x: torch.linalg.eigvalsh(torch.cov(x))[-rank]


ppca_statistics = {
    "largest eigenvalue": eigenvalue(1),
    "second eigenvalue": eigenvalue(2),
    "smallest eigenvalue": eigenvalue(3),
}
checks = {}
for label, fit in fits.items():
    pyro.set_rng_seed(SEED + 9)
    x_replicated = replicate(
        fit.model, fit.guide, (None, PPCA_DATAPOINTS), num_samples=PPC_SAMPLES
    )
    checks[label] = posterior_predictive_check(fit.x, x_replicated, ppca_statistics)
    for name, check in checks[label].items():
        replicated = check.replicated
        print(
            f"{label:12s} {name:20s} observed {check.observed:6.3f}  replicated "
            f"{float(replicated.mean()):6.3f} ± {float(replicated.std()):.3f}  "
            f"p = {check.p_value:.3f}"
        )
        report(f"{label}_ppc_p_{slug(name)}", check.p_value)
        report(f"{label}_ppc_observed_{slug(name)}", check.observed)
        report(f"{label}_ppc_replicated_mean_{slug(name)}", float(replicated.mean()))
        report(f"{label}_ppc_replicated_max_{slug(name)}", float(replicated.max()))

# %%
fig = plot_ppc(checks["good"], title="PPCA with latent_dim=2 (correct): checks pass")
save_figure(fig, OUT / "ppc_good.png")
fig

# %%
fig = plot_ppc(
    checks["misspecified"],
    title="PPCA with latent_dim=1 (too small): the second eigenvalue fails",
)
save_figure(fig, OUT / "ppc_misspecified.png")
fig

# %% [markdown]
# The mis-specified model fails exactly one check, and fails it completely. The
# observed second eigenvalue is about 3.4 (that of $W W^\top + \sigma^2 I$ for the
# true axes is 3.41), while every replicate has about $\sigma^2 = 0.25$ there, so
# $p = 0$. The other two statistics pass: the one axis
# the model has is placed along the largest direction, and the smallest direction is
# noise in both data and model. So the check says more than "wrong": it says which
# direction of spread the model cannot produce. The correct model passes all three.
#
# The same story in pictures: the spectrum of the data against the replicated
# spectra, and the data against one replicate, both in the plane of the data's two
# principal directions.

# %%
fig = Figure(figsize=(10, 4), layout="constrained")
axes = fig.subplots(1, 2, sharey=True)
ranks = [1, 2, 3]
for ax, (label, check_set) in zip(axes, checks.items(), strict=True):
    replicated = [check.replicated.numpy() for check in check_set.values()]
    ax.boxplot(replicated, positions=ranks, widths=0.5, whis=(0.5, 99.5))
    ax.plot(
        ranks,
        [check.observed for check in check_set.values()],
        "o",
        markerfacecolor="none",
        markeredgecolor="tab:red",
        markeredgewidth=2,
        markersize=14,
        label="observed data",
    )
    p_values = ", ".join(f"{check.p_value:.2f}" for check in check_set.values())
    latent_dim = fits[label].model.latent_dim
    ax.set(
        title=f"{label}: latent_dim={latent_dim}  (p = {p_values})",
        xlabel="eigenvalue of cov(x), largest first",
        xticks=ranks,
    )
    ax.grid(alpha=0.3, axis="y")
axes[0].set_ylabel("eigenvalue (boxes: replicated data sets)")
axes[0].set_ylim(bottom=0)
axes[0].legend(loc="upper right")
fig.suptitle("Spectrum of the data against the posterior predictive")
save_figure(fig, OUT / "eigenvalue_spectrum.png")
fig

# %%
second_moment = x_obs @ x_obs.T / x_obs.shape[1]
principal = torch.linalg.eigh(second_moment).eigenvectors.flip(1)[:, :2]


def in_principal_plane(x):
    """Coordinates of (3, N) points on the data's top two principal directions."""
    return (principal.T @ x).cpu()


observed_plane = in_principal_plane(x_obs)
fig = Figure(figsize=(10, 3.9), layout="constrained")
axes = fig.subplots(1, 2)
half_width = 1.1 * float(observed_plane[0].abs().max())
half_height = 1.1 * float(observed_plane[1].abs().max())
for ax, (label, fit) in zip(axes, fits.items(), strict=True):
    pyro.set_rng_seed(SEED + 10)
    generated_plane = in_principal_plane(fit.replay())
    shown = slice(0, 2000)
    ax.scatter(*observed_plane[:, shown], s=5, alpha=0.3, label="observed")
    ax.scatter(*generated_plane[:, shown], s=5, alpha=0.3, label="replayed from q")
    ax.set(
        title=f"{label}: latent_dim={fit.model.latent_dim}",
        xlabel="principal direction 1",
    )
    ax.set(xlim=(-half_width, half_width), ylim=(-half_height, half_height))
    ax.set_aspect("equal", adjustable="box")
    ax.legend(loc="upper right", markerscale=3)
axes[0].set_ylabel("principal direction 2")
fig.suptitle("Observed data and data generated from each fit")
save_figure(fig, OUT / "replay_principal_plane.png")
fig

# %% [markdown]
# With one latent dimension, the generated points spread along the first direction
# only, and the second is the thin band of the noise. The data spread in a plane.
#
# **Summary.** `trace` records a run, `condition` pins sites to values, `replay`
# reuses a trace's values, and `block` hides sites. Criticism composes them: replay
# the inferred latents to generate data, repeat that with `Predictive` to get the
# posterior predictive distribution of a statistic, and read the p-value. A p-value
# near 0 or 1 for a statistic chosen to probe the model's assumptions names the
# assumption that fails.

# %%
elapsed = time.perf_counter() - START
print(f"tutorial ran in {elapsed:.1f} s; figures in {OUT}")
