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
# # Prior choices for the VAE
#
# The VAE of tutorial 2 draws its codes from a fixed standard Normal,
# $p(z) = \mathcal{N}(0, I)$. Nothing forces that choice. TensorFlow
# Probability's VAE example *learns* the prior instead: a mixture of Gaussians
# whose means, spreads and weights are trained together with the encoder and the
# decoder. This tutorial trains both kinds on the same data with the same settings
# and seed, and compares
#
# 1. their bounds on $\log p(x)$: the ELBO and the importance-weighted bound, and
#    the two parts of the ELBO (rate and distortion);
# 2. images decoded from draws of each prior;
# 3. in a 2-D latent space, where each prior puts its mass against where the
#    encoder puts the codes of real images.
#
# It builds on tutorial 2 (model and guide as Pyro programs, the ELBO, amortized
# SVI, `poutine.trace` and `replay`, the importance-weighted bound); the Pyro
# ideas are recalled briefly where they are used.
#
# **Running it.** `python tutorials/04_vae_priors.py` runs the full experiment on
# MNIST (a few minutes on two CPU cores, on a GPU when there is one);
# `PPL_MODELS_TUTORIAL_QUICK=1` runs the same code on a slice of the data for a
# few epochs. MNIST is read from `$PPL_MODELS_DATA/mnist/`; without it the
# tutorial uses scikit-learn's 8x8 digits. Figures go to
# `$PPL_MODELS_TUTORIAL_OUT/04_vae_priors/` (default `tutorials/output/`), key
# numbers to lines starting with `RESULT`.

# %%
# %matplotlib inline
# ruff: noqa: B018 (a figure left as a cell's last expression is how a notebook shows it)
import os
import time
from pathlib import Path

import matplotlib
import numpy as np
import pyro
import torch
from matplotlib.patches import Circle, Ellipse

from ppl_models.data import load_mnist_or_digits
from ppl_models.device import resolve_device
from ppl_models.errors import UsageError
from ppl_models.models.vae import fit_vae
from ppl_models.models.vae.criticize import encoded_means
from ppl_models.plots import (
    new_figure,
    plot_image_grid,
    plot_loss_trace,
    save_figure,
)

QUICK = os.environ.get("PPL_MODELS_TUTORIAL_QUICK") == "1"
# A notebook runs where it lies, in tutorials/; a script from the repository.
HERE = Path.cwd().parent if Path.cwd().name == "tutorials" else Path.cwd()
OUT = Path(os.environ.get("PPL_MODELS_TUTORIAL_OUT", HERE / "tutorials" / "output")) / (
    "04_vae_priors"
)
OUT.mkdir(parents=True, exist_ok=True)
SEED = 0
DEVICE = resolve_device("auto")  # CUDA when present, else the CPU
STARTED = time.perf_counter()
pyro.set_rng_seed(SEED)
print(f"quick mode: {QUICK}; device: {DEVICE}; figures in {OUT}")


def result(name: str, value: float) -> None:
    """Print one key number in the form the tests read."""
    print(f"RESULT {name} = {value:.4f}")


# %% [markdown]
# ## The data
#
# Dynamically binarized MNIST, as in tutorial 2: a fresh Bernoulli draw of every
# training image each epoch, a test set drawn once with a fixed seed. Without the
# MNIST files under `$PPL_MODELS_DATA/mnist/` the offline 8x8 digits stand in.


# %%
# MNIST when its files are here (in quick mode a slice of it, large enough for the
# learned prior to pull ahead); else the digits, with a warning that says so.
data = load_mnist_or_digits(
    device=DEVICE,
    limit_train=20000 if QUICK else None,
    limit_test=1000 if QUICK else None,
)
IMAGE_SHAPE = data.image_shape
print(
    f"dataset: {data.name}; {data.train.shape[0]} training and "
    f"{data.test.shape[0]} test images of {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]} pixels"
)

result("pixels_per_image", data.num_pixels)

# Sizes: the only thing that differs between the quick and the full run.
if QUICK:  # digits: 12 steps an epoch, so more epochs than for MNIST's slice
    # MNIST: the 2-D mixture needs about 900 steps before its weights follow the codes
    EPOCHS, EPOCHS_2D = (2, 6) if data.name == "mnist" else (10, 10)
    IWAE_K, IWAE_IMAGES = 16, 200
elif data.name == "mnist":
    EPOCHS, EPOCHS_2D, IWAE_K, IWAE_IMAGES = 8, 5, 100, 1000
else:  # the full run on digits: 12 steps an epoch, so many more epochs
    EPOCHS, EPOCHS_2D, IWAE_K, IWAE_IMAGES = 100, 100, 100, 297
LATENT_DIM = 16 if data.name == "mnist" else 8  # TFP's example uses 16
COMPONENTS = 10
# Everything but the prior is shared by the two models of a pair.
SHARED = {
    "elbo": "trace",
    "batch_size": 128,
    "lr": 1e-3,
    "seed": SEED,
    "progress": False,
    "mixture_components": COMPONENTS,
}
PRIORS = ("normal", "mixture")
PRIOR_NAMES = {"normal": "standard Normal", "mixture": f"mixture of {COMPONENTS}"}

# %% [markdown]
# ## A learned mixture prior
#
# The mixture prior has $C$ diagonal Gaussian components:
#
# $$
# p_\psi(z) = \sum_{c=1}^{C} \pi_c\,
#     \mathcal{N}\big(z;\, m_c,\, \mathrm{diag}\, s_c^2\big),
# \qquad
# \pi = \mathrm{softmax}(\alpha), \quad s_c = \mathrm{softplus}(r_c),
# $$
#
# with parameters $\psi = (\alpha, m, r)$ unconstrained, so plain gradient steps
# can move them (softmax keeps the weights on the simplex, softplus the scales
# positive). In the package, `vae.model.prior` is a small `torch.nn.Module` that
# holds $m$ as `loc`, $r$ as `raw_scale` and $\alpha$ as `logits`; calling it
# returns the distribution, a `MixtureSameFamily` of a `Categorical` over
# components and a `Normal(...).to_event(1)` per component, with event shape
# $(L,)$, exactly like the standard Normal it replaces. The Pyro model does not
# change at all: inside the plate over images it still says
# `z = pyro.sample("z", self.prior())`. Because the prior's parameters belong to
# the model, the same SVI steps that train the decoder train them too.
#
# ## Why the closed-form KL is gone
#
# Tutorial 2 computed $\mathrm{KL}(q_\phi(z \mid x)\,\|\,p(z))$ in closed form
# with `TraceMeanField_ELBO`. Between a Gaussian and a *mixture* of Gaussians
# there is no closed form, so that estimator cannot be used and the KL term must
# be estimated by Monte Carlo, $\log q_\phi(z \mid x) - \log p_\psi(z)$ at a
# drawn $z$, which is what `Trace_ELBO` does. Asking the package for the analytic
# version with a mixture prior fails early, with a message that says what to do:

# %%
try:
    fit_vae(data, prior="mixture", elbo="meanfield", epochs=1, progress=False)
except UsageError as error:
    print(f"{type(error).__name__}: {error}")

# %% [markdown]
# Both models below are therefore trained with `Trace_ELBO`, so the comparison is
# not muddied by different estimators.
#
# ## Two models, one setting
#
# Same data, same encoder and decoder (784-400-$L$ and back, $L = 16$ as in TFP's
# example), same seed (the networks start from the same weights and see the same
# batches), same schedule; only the prior differs.


# %%
def report_epoch(label: str):
    """A callback that prints the test ELBO after each epoch."""

    def report(history) -> None:
        print(
            f"  [{label}] epoch {history.epochs_done}: test ELBO "
            f"{history.test_elbo[-1]:.2f} nats per image "
            f"({history.train_seconds[-1]:.1f} s)"
        )

    return report


fits = {}
for prior in PRIORS:
    print(f"{PRIOR_NAMES[prior]} prior, latent_dim {LATENT_DIM}, {EPOCHS} epochs:")
    fits[prior] = fit_vae(
        data,
        prior=prior,
        epochs=EPOCHS,
        latent_dim=LATENT_DIM,
        on_epoch_end=report_epoch(prior),
        **SHARED,
    )

fig = plot_loss_trace(
    {PRIOR_NAMES[p]: fits[p].history.test_elbo for p in PRIORS},
    title=f"Test ELBO per epoch by prior (latent_dim {LATENT_DIM})",
    xlabel="epoch",
    ylabel="test ELBO (nats per image, higher is better)",
)
save_figure(fig, OUT / "test_elbo.png")
fig

# %% [markdown]
# ## Bounds side by side
#
# For each model we report, on the first test images, the ELBO and the
# importance-weighted bound with $K$ samples (tutorial 2 explains it:
# $\mathcal{L}_K = \mathbb{E}\log \frac{1}{K}\sum_k p(x, z_k)/q(z_k \mid x)$,
# never below the ELBO). The ELBO splits into two parts, in the language of
# TFP's example:
#
# $$
# -\mathrm{ELBO}(x) =
# \underbrace{\mathbb{E}_{q}\big[-\log p_\theta(x \mid z)\big]}_{\text{distortion}}
# + \underbrace{\mathbb{E}_{q}\big[\log q_\phi(z \mid x)
#     - \log p_\psi(z)\big]}_{\text{rate} \,=\, \mathrm{KL}(q \,\|\, p)}.
# $$
#
# `fit.evaluate` returns both parts beside the bounds, estimated from the same $K$
# draws per image. It computes them with the handlers of tutorial 2:
# `poutine.trace` records the guide's draw of `z`, `poutine.replay` runs the model
# with that `z`, and the two traces hold every log-density needed (a few lines, in
# `ppl_models.models.vae.evaluate.log_weight_parts`).


# %%
def score(fit) -> dict[str, float]:
    """Test ELBO (whole test set), ELBO and IWAE bound, rate and distortion."""
    bounds = fit.evaluate(iwae_samples=IWAE_K, num_images=IWAE_IMAGES, seed=SEED)
    return {"test_elbo": fit.history.test_elbo[-1], **bounds}


def print_table(scores: dict[str, dict[str, float]], latent_dim: int) -> None:
    """The scores of a pair of models as a small text table."""
    shown = min(IWAE_IMAGES, len(data.test))
    print(
        f"latent_dim {latent_dim}; nats per image; ELBO, IWAE, rate and distortion "
        f"on {shown} test images, IWAE with K = {IWAE_K}"
    )
    header = f"{'prior':17} {'test ELBO':>10} {'ELBO':>9} {'IWAE':>9} "
    print(header + f"{'rate':>7} {'distortion':>10}")
    for prior, s in scores.items():
        print(
            f"{PRIOR_NAMES[prior]:17} {s['test_elbo']:10.2f} {s['elbo']:9.2f} "
            f"{s['iwae']:9.2f} {s['rate']:7.2f} {s['distortion']:10.2f}"
        )


scores = {prior: score(fits[prior]) for prior in PRIORS}
print_table(scores, LATENT_DIM)
for prior in PRIORS:
    for key in ("test_elbo", "elbo", "iwae", "rate", "distortion"):
        result(f"{prior}_{key}", scores[prior][key])
config = fits["normal"].vae.config
print(
    f"networks: {data.num_pixels}-{config.hidden_dims[0]}-{config.latent_dim} and back"
)
result("hidden_units", config.hidden_dims[0])
result("latent_dim", config.latent_dim)

# %% [markdown]
# The rate is the price of the prior: how many nats each image's code costs
# against $p(z)$. A learned prior can lower it without touching the encoder, by
# moving its mass to where the codes are. The plot puts the two bounds of each
# model side by side; the vertical bar joins a model's ELBO and its IWAE bound.
# Its length is a lower bound on the ELBO's gap to $\log p(x)$, the part that a
# better posterior approximation could close.


# %%
def plot_bounds(panels: dict[str, dict[str, dict[str, float]]]):
    """ELBO and IWAE bound of each prior, one panel per latent size."""
    fig, axes = new_figure(len(panels), size=4.2)
    for ax, (title, pair) in zip(axes, panels.items(), strict=True):
        for x, prior in enumerate(PRIORS):
            s = pair[prior]
            ax.plot([x, x], [s["elbo"], s["iwae"]], color="0.6", zorder=1)
            ax.scatter(x, s["elbo"], color="tab:blue", zorder=2, label="ELBO")
            ax.scatter(
                x,
                s["iwae"],
                color="tab:orange",
                marker="^",
                zorder=2,
                label=f"IWAE (K = {IWAE_K})",
            )
            ax.annotate(
                f"{s['iwae']:.2f}",
                (x, s["iwae"]),
                xytext=(8, 0),
                textcoords="offset points",
            )
            ax.annotate(
                f"{s['elbo']:.2f}",
                (x, s["elbo"]),
                xytext=(8, 0),
                textcoords="offset points",
            )
        ax.set_xticks(range(len(PRIORS)), [PRIOR_NAMES[p] for p in PRIORS])
        ax.set_xlim(-0.5, len(PRIORS) - 0.3)
        ax.set(title=title, xlabel="prior", ylabel="nats per image (higher is better)")
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles[:2], labels[:2], loc="outside lower center", ncols=2)
    fig.suptitle("Bounds on log p(x) of test images, by prior")
    return fig


fig = plot_bounds({f"latent_dim {LATENT_DIM}": scores})
save_figure(fig, OUT / "bounds.png")
fig

# %% [markdown]
# ## Samples side by side
#
# Each model decodes draws from its *own* prior: `fit.sample(n)` runs the model
# with no images, so Pyro samples `z` from the prior and returns the pixel
# probabilities of `x`. A prior that leaves mass where no training code lies
# decodes those draws into blurry or ambiguous shapes; a prior that sits on the
# codes gives more digit-like samples.


# %%
fig, axes = new_figure(2, size=4.8)
for ax, prior in zip(axes, PRIORS, strict=True):
    torch.manual_seed(SEED)
    title = f"{PRIOR_NAMES[prior]} prior"
    plot_image_grid(fits[prior].sample(64), IMAGE_SHAPE, ncols=8, title=title, ax=ax)
fig.suptitle(f"Images decoded from prior draws (latent_dim {LATENT_DIM})")
save_figure(fig, OUT / "samples.png")
fig

# %% [markdown]
# ## What a learned prior buys
#
# Average the ELBO's KL term over the data. With the *aggregate posterior*
# $q_\phi(z) = \frac{1}{N}\sum_{n} q_\phi(z \mid x_n)$, the distribution of
# the codes of the whole training set, it splits in two (Hoffman and Johnson,
# 2016):
#
# $$
# \frac{1}{N}\sum_{n=1}^{N} \mathrm{KL}\big(q_\phi(z \mid x_n)\,\|\,p(z)\big)
# = \underbrace{I_q(x; z)}_{\text{information the codes carry}}
# + \underbrace{\mathrm{KL}\big(q_\phi(z)\,\|\,p(z)\big)}_{\text{prior mismatch}}.
# $$
#
# The first term does not depend on the prior. The second is zero only when the
# prior equals the aggregate posterior. A fixed $\mathcal{N}(0, I)$ pays for every
# way the codes differ from it: clusters with gaps between them, uneven spreads,
# a cloud that is not round. A learned prior moves towards $q_\phi(z)$ and pays
# less; the same encoder and decoder then have a higher ELBO, a tighter bound on
# $\log p(x)$. Sampling gains too, since $z \sim p(z)$ then lands where real codes
# lie. The cost: no closed-form KL (a noisier gradient), a few more parameters,
# and a prior that can overfit the training codes if it is made very flexible.
#
# ## Seeing it in two dimensions
#
# With $L = 16$ neither the prior nor the codes can be drawn, so we train one more
# pair with `latent_dim=2`, otherwise identical, and draw each prior over the
# encoder's means $\mu_\phi(x)$ of test images, coloured by their digit. For the
# standard Normal, the circles have radius 1 and 2; for the mixture each
# component is an ellipse of two standard deviations around its mean $m_c$, drawn
# darker for heavier weights $\pi_c$ (printed next to it). The grey contours are
# the prior's log-density in both panels. We read the mixture's parameters from
# the distribution that `vae.model.prior()` returns.

# %%
fits_2d = {}
for prior in PRIORS:
    print(f"{PRIOR_NAMES[prior]} prior, latent_dim 2, {EPOCHS_2D} epochs:")
    fits_2d[prior] = fit_vae(
        data,
        prior=prior,
        epochs=EPOCHS_2D,
        latent_dim=2,
        on_epoch_end=report_epoch(f"{prior}, 2-D"),
        **SHARED,
    )
scores_2d = {prior: score(fits_2d[prior]) for prior in PRIORS}
print_table(scores_2d, 2)
for prior in PRIORS:
    for key in ("test_elbo", "elbo", "iwae", "rate", "distortion"):
        result(f"latent2_{prior}_{key}", scores_2d[prior][key])

# The learned mixture, and how many of the test codes each component holds: the
# mean over codes of its responsibility pi_c N(z; m_c, s_c) / p(z).
components = fits_2d["mixture"].vae.model.prior.components()
weights, means, scales = (components[k].cpu() for k in ("weights", "loc", "scale"))
shown = data.test[:3000]
codes = encoded_means(fits_2d["mixture"].vae, shown).cpu()
log_joint = torch.distributions.Normal(means, scales).log_prob(codes[:, None]).sum(-1)
held = torch.softmax(log_joint + weights.log(), dim=-1).mean(0)
for c in torch.argsort(weights, descending=True).tolist():
    print(
        f"component {c}: weight {weights[c]:.3f}, holds {held[c]:.3f} of the codes, "
        f"mean ({means[c, 0]:+.2f}, {means[c, 1]:+.2f}), "
        f"sd ({scales[c, 0]:.2f}, {scales[c, 1]:.2f})"
    )
# Total variation distance of the learned weights, and of the equal weights the
# mixture starts from, to the shares of codes the components hold.
distance = {
    "learned": 0.5 * float((weights - held).abs().sum()),
    "equal": 0.5 * float((1 / COMPONENTS - held).abs().sum()),
}
print(
    f"distance to the shares of codes: learned weights {distance['learned']:.3f}, "
    f"equal weights {distance['equal']:.3f}"
)
for name, value in distance.items():
    result(f"{name}_weights_distance_to_code_shares", value)
# Do the weights belong to their components? Shuffled among the components, the
# same weights should come as close only rarely.
generator = torch.Generator().manual_seed(SEED)
shuffled = torch.tensor(
    [
        0.5
        * float(
            (weights[torch.randperm(COMPONENTS, generator=generator)] - held)
            .abs()
            .sum()
        )
        for _ in range(1000)
    ]
)
as_close = float((shuffled <= distance["learned"]).float().mean())
print(
    f"the same weights shuffled among the components: distance {shuffled.mean():.3f} "
    f"on average; {as_close:.1%} of 1000 shuffles come as close as the learned order"
)
result("shuffled_weights_as_close", as_close)

fig = plot_bounds({f"latent_dim {LATENT_DIM}": scores, "latent_dim 2": scores_2d})
save_figure(fig, OUT / "bounds_both_sizes.png")
fig

# %%
labels = data.test_labels[: len(shown)].cpu().numpy()
colours = matplotlib.colormaps["tab10"]
fig, axes = new_figure(2, size=5.2)
for ax, prior in zip(axes, PRIORS, strict=True):
    vae = fits_2d[prior].vae
    codes = encoded_means(vae, shown).cpu().numpy()
    for digit in np.unique(labels):
        mine = codes[labels == digit]
        ax.scatter(*mine.T, s=3, alpha=0.5, color=colours(digit), label=str(digit))
    low = np.minimum(codes.min(0), -3.0) - 0.5
    high = np.maximum(codes.max(0), 3.0) + 0.5
    grid_1, grid_2 = np.meshgrid(
        np.linspace(low[0], high[0], 150), np.linspace(low[1], high[1], 150)
    )
    points = torch.tensor(np.stack([grid_1, grid_2], -1), dtype=torch.float32)
    with torch.no_grad():
        log_density = vae.model.prior().log_prob(points.to(vae.device)).cpu().numpy()
    ax.contour(grid_1, grid_2, log_density, levels=8, colors="0.5", linewidths=0.6)
    if prior == "normal":
        for radius in (1.0, 2.0):
            ax.add_patch(Circle((0, 0), radius, fill=False, lw=1.5, color="black"))
    else:
        for c in range(COMPONENTS):
            darkness = 0.25 + 0.75 * float(weights[c] / weights.max())
            centre = (float(means[c, 0]), float(means[c, 1]))
            ax.add_patch(
                Ellipse(
                    centre,
                    4 * float(scales[c, 0]),
                    4 * float(scales[c, 1]),
                    fill=False,
                    lw=1.5,
                    color="black",
                    alpha=darkness,
                )
            )
            ax.scatter(*centre, marker="x", s=40, color="black", alpha=darkness)
            ax.annotate(
                f"{weights[c]:.2f}",
                centre,
                xytext=(4, 4),
                textcoords="offset points",
                fontsize="small",
            )
    ax.set(
        xlim=(low[0], high[0]),
        ylim=(low[1], high[1]),
        xlabel="$z_1$",
        ylabel="$z_2$",
        title=f"{PRIOR_NAMES[prior]} prior: rate {scores_2d[prior]['rate']:.2f} nats",
    )
    ax.set_aspect("equal")
axes[1].legend(
    title="digit",
    markerscale=4,
    fontsize="small",
    loc="center left",
    bbox_to_anchor=(1.0, 0.5),
)
fig.suptitle(f"Each prior over the encoder means of {len(shown)} test images")
save_figure(fig, OUT / "latent_priors.png")
fig

# %% [markdown]
# The standard Normal's circles ask the codes to be one round cloud; the codes
# instead form clusters by digit, with gaps and long arms (the 1s) that the prior
# does not follow. The mixture's components move onto the codes, stretch along
# the clusters, and take weights that follow how many codes each region holds.
# Freed from the pull towards one round cloud, the encoder also spreads the
# clusters further apart, which the decoder turns into sharper reconstructions.
#
# In the full run (MNIST, seed 0, 8 epochs for the 16-D pair and 5 for the 2-D
# pair) the learned prior raised the test ELBO by about 2.7 nats per image with 16
# latent dimensions (-102.98 against -105.64) and by 2.0 with two (-165.71 against
# -167.68), and the importance-weighted bound moved by about as much. With 16
# dimensions both parts of the ELBO improved (rate 22.97 against 23.99 nats,
# distortion 78.96 against 80.77); in two dimensions the rate hardly changed (4.44
# against 4.48) and most of the gain was in the distortion. A learned prior does
# not only pay less for the same codes: it lets the model choose better codes. The
# mixture's weights ranged from 0.05 to 0.22, and the total variation distance
# from them to the shares of codes the components hold was 0.07, against 0.23 for
# the equal weights the mixture started from, and far less than for the same
# weights shuffled among the components. The quick run on a slice of MNIST
# shows the same orderings with smaller margins.
#
# ## Summary
#
# * Swapping the prior is a one-line change in a Pyro model: the `z` site samples
#   from whatever distribution the prior module returns, and the prior's
#   parameters train with the rest.
# * A mixture prior has no closed-form KL against the Gaussian guide, so it needs
#   `Trace_ELBO`; the package refuses the analytic estimator for it.
# * A learned prior shrinks the mismatch between the aggregate posterior and the
#   prior, the part of the KL term that the prior controls, which tightens the
#   bound and puts prior draws where the codes of real images are.

# %%
print(f"Finished in {time.perf_counter() - STARTED:.0f} s")
