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
# # Variational autoencoder on MNIST
#
# A variational autoencoder (VAE) is a latent-variable model of images whose
# decoder is a neural network, fitted together with a second network, the encoder,
# that guesses each image's latent code. This tutorial builds one with
# [Pyro](https://pyro.ai) through the `ppl_models` package and looks at it from
# every side:
#
# 1. the objective, the evidence lower bound (ELBO), and why its KL term acts as
#    a regulariser;
# 2. the model and the guide as two Pyro programs, and what Pyro records when it
#    runs them;
# 3. amortized stochastic variational inference (SVI), with the KL term computed
#    in closed form and by Monte Carlo;
# 4. what the trained model does: the loss curve, images drawn from the prior,
#    reconstructions obtained by *replaying* encoded codes through the model, and,
#    for a 2-D latent space, the learned manifold and the codes of the test set;
# 5. the importance-weighted bound, a tighter estimate of $\log p(x)$ than the
#    ELBO.
#
# You need PyTorch, not Pyro: every Pyro idea is explained where it first
# appears.
#
# **Running it.** `python tutorials/02_vae_mnist.py` runs the full experiment
# (the whole of MNIST, a few minutes on two CPU cores, on a GPU when there is one).
# With `PPL_MODELS_TUTORIAL_QUICK=1` it runs the same code on a slice of the data
# for a few epochs, which is what the test suite does. MNIST is read from the
# `mnist/` folder under `$PPL_MODELS_DATA`; without it the tutorial falls back to
# scikit-learn's bundled 8x8 digits, so it always runs offline. Figures go to
# `$PPL_MODELS_TUTORIAL_OUT/02_vae_mnist/` (default `tutorials/output/`), and key
# numbers are printed on lines starting with `RESULT`.

# %%
# %matplotlib inline
# ruff: noqa: B018 (a figure left as a cell's last expression is how a notebook shows it)
import os
import time
from pathlib import Path

import pyro
import torch
from pyro import poutine
from pyro.infer import TraceMeanField_ELBO

from ppl_models.data import load_mnist_or_digits
from ppl_models.device import resolve_device
from ppl_models.models.vae import VAE, VAEConfig, fit_vae, make_elbo
from ppl_models.models.vae.criticize import encoded_means, latent_manifold
from ppl_models.plots import (
    new_figure,
    plot_image_grid,
    plot_latent_scatter,
    plot_loss_trace,
    plot_reconstructions,
    save_figure,
)

QUICK = os.environ.get("PPL_MODELS_TUTORIAL_QUICK") == "1"
# A notebook runs where it lies, in tutorials/; a script from the repository.
HERE = Path.cwd().parent if Path.cwd().name == "tutorials" else Path.cwd()
OUT = Path(os.environ.get("PPL_MODELS_TUTORIAL_OUT", HERE / "tutorials" / "output")) / (
    "02_vae_mnist"
)
OUT.mkdir(parents=True, exist_ok=True)
SEED = 0
DEVICE = resolve_device("auto")  # CUDA when present, else the CPU
STARTED = time.perf_counter()
pyro.set_rng_seed(SEED)  # seeds torch, numpy and Python's random at once
print(f"quick mode: {QUICK}; device: {DEVICE}; figures in {OUT}")


def result(name: str, value: float) -> None:
    """Print one key number in the form the tests read."""
    print(f"RESULT {name} = {value:.4f}")


# %% [markdown]
# ## The data
#
# MNIST holds 60,000 training and 10,000 test images of handwritten digits, 28x28
# grey pixels each. We model *binarized* images: each pixel is 0 or 1, so a
# Bernoulli distribution per pixel is the natural likelihood. The package
# binarizes *dynamically*: every epoch each training image is drawn afresh, pixel
# by pixel, as a Bernoulli variable whose probability is the grey level (a cheap
# form of data augmentation), while the test set is drawn once with a fixed seed
# so that test scores are comparable between runs.
#
# Images are flattened to vectors of $P = 784$ pixels. The next cell looks for the
# MNIST files under `$PPL_MODELS_DATA` and, if they are not there, uses the
# offline 8x8 digits ($P = 64$) instead. Nothing is downloaded.


# %%
# MNIST when its files are here (a slice of it in quick mode); else the digits, with
# a warning that says so.
data = load_mnist_or_digits(
    device=DEVICE,
    limit_train=5000 if QUICK else None,
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
    EPOCHS = EPOCHS_2D = 3 if data.name == "mnist" else 10
    IWAE_KS, IWAE_IMAGES = (1, 4, 16), 200
elif data.name == "mnist":
    EPOCHS, EPOCHS_2D, IWAE_KS, IWAE_IMAGES = 10, 5, (1, 10, 100), 1000
else:  # the full run on digits: 12 steps an epoch, so many more epochs
    EPOCHS, EPOCHS_2D, IWAE_KS, IWAE_IMAGES = 100, 100, (1, 10, 100), 297
LATENT_DIM = 50 if data.name == "mnist" else 10
result("latent_dim", LATENT_DIM)
ELBO_NAMES = ("trace", "meanfield")
TRAINING = {"batch_size": 128, "lr": 1e-3, "seed": SEED, "progress": False}

# The first 32 test images, as the model will see them: binary pixels.
fig = plot_image_grid(
    data.test[:32], IMAGE_SHAPE, ncols=8, title=f"Binarized {data.name} test images"
)
save_figure(fig, OUT / "data.png")
fig

# %% [markdown]
# ## The ELBO, and why its KL term is a regulariser
#
# The model draws a latent code $z \in \mathbb{R}^L$ from a prior and an image
# $x$ from a decoder network $f_\theta$:
#
# $$
# p_\theta(x, z) = p(z)\, p_\theta(x \mid z), \qquad
# p(z) = \mathcal{N}(z; 0, I_L), \qquad
# p_\theta(x \mid z) = \prod_{j=1}^{P} \mathrm{Bernoulli}\big(x_j;\,
#     \sigma(f_\theta(z)_j)\big).
# $$
#
# Fitting $\theta$ by maximum likelihood would need the evidence
# $\log p_\theta(x) = \log \int p_\theta(x \mid z)\, p(z)\, dz$, an integral over
# $L$ dimensions with no closed form for a neural decoder (and drawing $z$ from
# the prior almost never hits a code that explains a given image), and the posterior
# $p_\theta(z \mid x)$ is just as intractable. Variational inference brings in an
# approximate posterior $q_\phi(z \mid x)$ and uses the identity
#
# $$
# \log p_\theta(x)
# = \underbrace{\mathbb{E}_{q_\phi(z \mid x)}\big[\log p_\theta(x, z)
#     - \log q_\phi(z \mid x)\big]}_{\mathrm{ELBO}(\theta, \phi;\, x)}
# + \mathrm{KL}\big(q_\phi(z \mid x)\,\|\,p_\theta(z \mid x)\big).
# $$
#
# A KL divergence is never negative, so the ELBO is a lower bound on the
# evidence, and raising it either raises $\log p_\theta(x)$ or brings $q_\phi$
# closer to the true posterior. Regrouping the terms gives the form that explains
# what training does:
#
# $$
# \mathrm{ELBO}(\theta, \phi;\, x)
# = \underbrace{\mathbb{E}_{q_\phi(z \mid x)}
#     \big[\log p_\theta(x \mid z)\big]}_{\text{reconstruction}}
# - \underbrace{\mathrm{KL}\big(q_\phi(z \mid x)\,\|\,p(z)\big)}_{\text{regulariser}}.
# $$
#
# The first term rewards codes from which the decoder rebuilds the image. On its
# own it would let the encoder put each image at its own point with a vanishing
# spread, an ordinary autoencoder whose code space has gaps where nothing
# decodes to a digit. The second term charges every image for how far its
# $q_\phi(z \mid x)$ strays from the prior: it pulls the means towards 0 and keeps
# the spreads near 1, so the codes of all images fill one smooth region that the
# prior covers. That is what makes *sampling* $z \sim p(z)$ and decoding it
# produce plausible images later on. The ELBO is measured in nats per image;
# higher (closer to 0) is better.

# %% [markdown]
# ## Model and guide as Pyro programs
#
# In Pyro a probabilistic model is an ordinary Python function (here the
# `forward` of a `torch.nn.Module`) that calls `pyro.sample` for every random
# variable. Each call is a **sample site** with a name. With `obs=` a site is
# *observed*: its value is the data and it contributes the log-likelihood of that
# data; without it the site is *latent* and Pyro draws a value. The package's
# model, `VAEModel.forward(x)`, is in outline
#
# ```text
# with pyro.plate("data", batch_size):
#     z = pyro.sample("z", Normal(0, 1) over L coordinates, as one event)
#     logits = decoder(z)
#     pyro.sample("x", Bernoulli(logits) over P pixels, as one event, obs=x)
# ```
#
# and its guide, `VAEGuide.forward(x)`, which defines $q_\phi(z \mid x)$, is
#
# ```text
# with pyro.plate("data", batch_size):
#     loc, scale = encoder(x)
#     z = pyro.sample("z", Normal(loc, scale) over L coordinates, as one event)
# ```
#
# Three Pyro ideas are at work:
#
# * **`pyro.plate("data", B)`** declares that the $B$ images of a batch are
#   conditionally independent. Inside it the rightmost *batch* dimension of every
#   distribution indexes images, and Pyro sums their log-probabilities,
#   $\log p(x_{1:B}, z_{1:B}) = \sum_i \log p(x_i, z_i)$.
# * **`.to_event(1)`** turns the rightmost dimension of a distribution from a
#   batch of independent scalars into one vector-valued *event*. The $P$ pixels
#   of an image form one observation $x_i$, and the $L$ coordinates one code $z_i$,
#   so `log_prob` returns one number per image (summed over pixels or
#   coordinates) rather than one per pixel. The shapes below show it: batch
#   dimensions to the left of `|`, event dimensions to the right.
# * The **guide** is Pyro's name for the program that defines the approximate
#   posterior. It must have a sample site of the same name (`z`) for every latent
#   site of the model, and no observed sites. Pairing sites by name is how Pyro
#   knows that the guide's `z` approximates the model's `z`.
#
# The guide is **amortized**: instead of learning a separate mean and spread for
# each of the 60,000 training images, one encoder network maps any image to its
# $(\mu_\phi(x), \sigma_\phi(x))$:
#
# $$
# q_\phi(z \mid x) = \mathcal{N}\big(z;\, \mu_\phi(x),\,
#     \mathrm{diag}\,\sigma_\phi(x)^2\big).
# $$
#
# Its cost is fixed whatever the size of the data set, and it encodes new images
# with one forward pass.
#
# To see what Pyro records we build an untrained VAE and run both programs on a
# batch of 4 test images under **`poutine.trace`**. A *poutine* (effect handler)
# wraps a program and intercepts its `pyro.sample` calls; `trace` records each
# site: its distribution, its value, and whether it was observed. Running the
# model under `poutine.replay(model, trace=guide_trace)` makes its `z` take the
# guide's value, exactly as the ELBO needs (more on `replay` below).

# %%
demo_vae = VAE(VAEConfig(image_shape=IMAGE_SHAPE, latent_dim=LATENT_DIM)).to(DEVICE)
batch = data.test[:4]
with torch.no_grad():
    guide_trace = poutine.trace(demo_vae.guide).get_trace(batch)
    model_trace = poutine.trace(
        poutine.replay(demo_vae.model, trace=guide_trace)
    ).get_trace(batch)


def describe_sites(name: str, trace) -> None:
    """List the sample sites of a trace with their shapes."""
    trace.compute_log_prob()
    print(f"{name}:")
    print(
        f"  {'site':5} {'kind':9} {'distribution':13} {'batch':6} {'event':6} "
        f"{'value':10} log_prob"
    )
    for site, node in trace.nodes.items():
        if node["type"] != "sample" or site == "data":  # "data" is the plate
            continue
        fn = node["fn"]
        kind = "observed" if node["is_observed"] else "latent"
        print(
            f"  {site:5} {kind:9} {type(fn.base_dist).__name__:13} "
            f"{tuple(fn.batch_shape)!s:6} {tuple(fn.event_shape)!s:6} "
            f"{tuple(node['value'].shape)!s:10} {tuple(node['log_prob'].shape)}"
        )


describe_sites("guide trace", guide_trace)
describe_sites("model trace (z replayed from the guide)", model_trace)
z_shape, x_shape = (tuple(model_trace.nodes[n]["value"].shape) for n in ("z", "x"))
result("traced_z_rows", z_shape[0])
result("traced_z_columns", z_shape[1])
result("traced_x_rows", x_shape[0])
result("traced_x_columns", x_shape[1])
result("traced_log_prob_length", model_trace.nodes["x"]["log_prob"].numel())
print("\nPyro's own summary of the model trace:")
print(model_trace.format_shapes())

# %% [markdown]
# Both traces have one `z` per image, shape $(4, L)$; the model also has the
# observed `x`, shape $(4, P)$. Batch shape `(4,)` comes from the plate and event
# shapes from `to_event`, so each `log_prob` is a vector of 4, one term per image.
# The network weights do not appear: the model and guide are plain `nn.Module`s
# whose weights are ordinary PyTorch parameters, handed to a PyTorch optimizer
# through Pyro's ELBO module. (Pyro's `PyroModule` would record a *param site* for
# every weight tensor on every run, a cost paid at every training step.)
#
# ## Amortized SVI
#
# From these two traces the ELBO of the batch is estimated by
# $\sum_i \big[\log p_\theta(x_i, z_i) - \log q_\phi(z_i \mid x_i)\big]$ with
# $z_i$ drawn from the guide. Pyro draws $z_i = \mu_\phi(x_i) + \sigma_\phi(x_i)
# \odot \varepsilon_i$ with $\varepsilon_i \sim \mathcal{N}(0, I)$ (the
# *reparameterization trick*), so the estimate is a differentiable function of
# $\theta$ and $\phi$ and one `backward()` gives unbiased gradients for decoder
# and encoder at once. Stochastic variational inference repeats: take a
# mini-batch, estimate $-\mathrm{ELBO}$, step with Adam. `fit_vae` runs that loop
# (Pyro's ELBO objects turn a model and a guide into the loss) and, after each
# epoch, evaluates the ELBO on the test set.
#
# Pyro offers two estimators of the same ELBO:
#
# * `Trace_ELBO` (`elbo="trace"`) estimates everything by Monte Carlo, the KL
#   term included: $\log p(z_i) - \log q_\phi(z_i \mid x_i)$ at the drawn $z_i$.
#   It works for any prior.
# * `TraceMeanField_ELBO` (`elbo="meanfield"`) replaces that part by the exact
#   KL divergence when it has a closed form, as it does between two diagonal
#   Gaussians:
#
# $$
# \mathrm{KL}\big(\mathcal{N}(\mu, \mathrm{diag}\,\sigma^2)\,\|\,
#     \mathcal{N}(0, I)\big)
# = \frac{1}{2} \sum_{l=1}^{L} \big(\mu_l^2 + \sigma_l^2 - 1
#     - \log \sigma_l^2\big).
# $$
#
# Only the reconstruction term is then left to sampling. We train the main model
# with `Trace_ELBO` and a second one, identical in every other respect (same
# initial weights, same batches), with `TraceMeanField_ELBO`.


# %%
def report_epoch(label: str):
    """A callback that prints the ELBOs after each epoch."""

    def report(history) -> None:
        epoch = history.epochs_done
        print(
            f"  [{label}] epoch {epoch}: train ELBO {history.train_elbo[-1]:.2f}, "
            f"test ELBO {history.test_elbo[-1]:.2f} nats per image "
            f"({history.train_seconds[-1]:.1f} s)"
        )

    return report


print(f"main model, Trace_ELBO, latent_dim {LATENT_DIM}, {EPOCHS} epochs:")
fit = fit_vae(
    data,
    elbo="trace",
    epochs=EPOCHS,
    latent_dim=LATENT_DIM,
    on_epoch_end=report_epoch("trace"),
    **TRAINING,
)
print(f"same model, TraceMeanField_ELBO (analytic KL), {EPOCHS} epochs:")
fit_meanfield = fit_vae(
    data,
    elbo="meanfield",
    epochs=EPOCHS,
    latent_dim=LATENT_DIM,
    on_epoch_end=report_epoch("meanfield"),
    **TRAINING,
)

history = fit.history
for name, trained in zip(ELBO_NAMES, (fit, fit_meanfield), strict=True):
    for epoch, value in enumerate(trained.history.test_elbo, start=1):
        result(f"{name}_test_elbo_epoch_{epoch}", value)
    # The Pyro ELBO object that fit_vae trained this model with.
    estimator = make_elbo(trained.settings.elbo, trained.vae.config)
    analytic = isinstance(estimator, TraceMeanField_ELBO)
    print(
        f"{name} fit trained with {type(estimator).__name__}, analytic KL: {analytic}"
    )
    result(f"{name}_fit_analytic_kl", analytic)
print(f"training speed: {history.images_per_second:.0f} images per second")

fig = plot_loss_trace(
    {
        "Monte Carlo KL (Trace_ELBO)": history.test_elbo,
        "analytic KL (TraceMeanField_ELBO)": fit_meanfield.history.test_elbo,
    },
    title=f"Test ELBO per epoch, two estimators ({data.name})",
    xlabel="epoch",
    ylabel="test ELBO (nats per image, higher is better)",
)
save_figure(fig, OUT / "elbo_estimators.png")
fig

# %% [markdown]
# Both estimators have the same expectation, so the two curves end close to each
# other; what differs is the *noise* of each step. The KL term depends on the
# encoder (through $\mu_\phi$ and $\sigma_\phi$) and on the prior, not on the
# decoder. Computing it exactly therefore removes one source of Monte Carlo noise
# from the **encoder's** gradients: the term $\log p(z) - \log q_\phi(z \mid x)$
# at a random $z$, whose spread grows with the number of latent dimensions that
# the model uses. The decoder's gradients come from the reconstruction term alone
# and are the same for both estimators. Less noisy gradients let Adam take cleaner
# steps, which is why the analytic version tends to be a little ahead per epoch.
#
# We can measure this. With the *same* trained VAE and the *same* batch of test
# images we evaluate each estimator many times, differentiate it each time, and
# add up the variances of the gradient's coordinates, separately for encoder and
# decoder weights. `make_elbo` builds the Pyro ELBO objects that `fit_vae` trains
# with, and `elbo.differentiable_loss(model, guide, x)` returns one estimate of
# $-\mathrm{ELBO}$, summed over the batch, that `torch.autograd` can
# differentiate.


# %%
def estimator_noise(name: str, vae, images, repeats: int) -> dict[str, float]:
    """Mean and sd of one ELBO estimator, and its gradients' total variance."""
    estimator = make_elbo(name, vae.config)
    groups = {
        "encoder": list(vae.guide.encoder.parameters()),
        "decoder": list(vae.model.decoder.parameters()),
    }
    params = groups["encoder"] + groups["decoder"]
    values, gradients = [], []
    for _ in range(repeats):
        loss = estimator.differentiable_loss(vae.model, vae.guide, images)
        loss = loss / len(images)  # per image
        grads = torch.autograd.grad(loss, params)
        values.append(-float(loss.detach()))
        gradients.append([g.flatten() for g in grads])
    split = len(groups["encoder"])
    noise = {
        "elbo_mean": float(torch.tensor(values).mean()),
        "elbo_sd": float(torch.tensor(values).std()),
    }
    for group, part in (
        ("encoder", slice(None, split)),
        ("decoder", slice(split, None)),
    ):
        stacked = torch.stack([torch.cat(g[part]) for g in gradients])
        noise[f"{group}_grad_var"] = float(stacked.var(dim=0).sum())
    return noise


# The quick run repeats more: 20 repeats could not tell its two ELBO sds apart
# (about 0.27 and 0.36, each known to about 15% from 20 draws).
repeats = 200 if QUICK else 50
probe = data.test[:256]
noise = {name: estimator_noise(name, fit.vae, probe, repeats) for name in ELBO_NAMES}
print(f"{repeats} repeats on the same {len(probe)} test images, same trained VAE:")
print(
    f"{'estimator':10} {'ELBO mean':>10} {'ELBO sd':>8} {'encoder grad var':>17} "
    f"{'decoder grad var':>17}"
)
for name, n in noise.items():
    print(
        f"{name:10} {n['elbo_mean']:10.3f} {n['elbo_sd']:8.3f} "
        f"{n['encoder_grad_var']:17.2f} {n['decoder_grad_var']:17.2f}"
    )
    for key in ("elbo_mean", "elbo_sd", "encoder_grad_var", "decoder_grad_var"):
        result(f"{key}_{name}", n[key])
result("noise_repeats", repeats)

# %% [markdown]
# The two means agree: both are unbiased estimates of the same ELBO. In the full
# run (MNIST, 10 epochs, seed 0) the analytic KL lowered the encoder's gradient
# variance by about a sixth (231 against 276), while the decoder's was the same
# (18.3 for both), as the argument above predicts. Over the epochs the analytic
# version stayed slightly ahead, ending at a test ELBO of -102.61 against -102.71
# nats per image.
#
# The spread of the loss *value* tells a different story, and it is worth
# knowing why: there the Monte Carlo estimator is often the *less* noisy one (in
# the full run, an sd of 0.25 against 0.35 nats per image). If
# $q_\phi$ were the exact posterior, $\log p_\theta(x, z) - \log q_\phi(z \mid x)$
# would equal $\log p_\theta(x)$ for every $z$: a Monte Carlo ELBO with zero
# variance. A good approximate posterior comes close, so the noise of the
# reconstruction term and that of the Monte Carlo KL term largely cancel, while
# the analytic version keeps the reconstruction noise on its own. "Analytic KL
# has lower variance" is a statement about the KL term and the encoder gradients
# it feeds, not about every number the estimator returns.
#
# ## The NELBO curve
#
# The loss that SVI minimizes is the negative ELBO (NELBO). Plotting it per epoch
# for the training set (averaged over the epoch's steps, while the weights were
# still changing) and for the test set (after the epoch) shows whether training
# has converged and whether the model overfits. With dynamically binarized
# training images overfitting is slow to appear: the curves stay close.

# %%
fig = plot_loss_trace(
    {
        "train (mean over the epoch)": [-value for value in history.train_elbo],
        "test (end of epoch)": [-value for value in history.test_elbo],
    },
    title=f"Negative ELBO of the main model ({data.name}, latent_dim {LATENT_DIM})",
    xlabel="epoch",
    ylabel="negative ELBO (nats per image, lower is better)",
)
save_figure(fig, OUT / "nelbo.png")
fig

# %% [markdown]
# ## Samples from the prior
#
# The model is a generator. Calling it with no images, `model(None, n)`, leaves
# `x` unobserved, so Pyro *samples* it: $z \sim p(z)$, then $x \sim p_\theta(x \mid
# z)$. `fit.sample(n)` runs the model that way under `poutine.trace` and returns
# the mean of the `x` site's distribution, the pixel probabilities
# $\sigma(f_\theta(z))$, which look smoother than a draw of 0/1 pixels. Images
# that look like digits here mean the codes of real images cover the prior well,
# which is the KL term's work.

# %%
torch.manual_seed(SEED)
fig = plot_image_grid(
    fit.sample(64),
    IMAGE_SHAPE,
    ncols=8,
    title=f"Decoded prior draws z ~ N(0, I), latent_dim {LATENT_DIM}",
)
save_figure(fig, OUT / "samples.png")
fig

# %% [markdown]
# ## Reconstructions: replaying encoded codes through the model
#
# To reconstruct an image we encode it, $z \sim q_\phi(z \mid x)$, and decode
# that $z$ with the model. In Pyro this is a composition of two handlers:
#
# 1. `poutine.trace(guide).get_trace(x)` runs the guide on the images and records
#    the `z` it drew for each;
# 2. `poutine.replay(model, trace=guide_trace)` is a new program that behaves as
#    the model except that every sample site whose name appears in the guide
#    trace takes the recorded value instead of a fresh draw;
# 3. tracing *that* program with no images, `model(None, B)`, replays `z` and
#    samples `x` from $p_\theta(x \mid z)$; the `x` site's distribution holds the
#    reconstruction.
#
# This is the same composition that the ELBO performs internally (there the model
# runs *with* the images, to score them); `fit.reconstruct(x)` is the packaged
# version of the cell below.

# %%
originals = data.test[:16]
with torch.no_grad():
    encoded = poutine.trace(fit.vae.guide).get_trace(originals)
    replayed_model = poutine.replay(fit.vae.model, trace=encoded)
    decoded = poutine.trace(replayed_model).get_trace(None, len(originals))
reconstructions = decoded.nodes["x"]["fn"].mean  # pixel probabilities (16, P)
assert torch.equal(decoded.nodes["z"]["value"], encoded.nodes["z"]["value"])

fig = plot_reconstructions(
    originals,
    reconstructions,
    IMAGE_SHAPE,
    title="Test images and their reconstructions (z ~ q(z | x) replayed)",
)
save_figure(fig, OUT / "reconstructions.png")
fig

# %% [markdown]
# ## A 2-D latent space: the manifold and the codes of the test set
#
# With $L = 50$ the latent space cannot be drawn, so we train a second model with
# `latent_dim=2` (otherwise the same) and look at it in two ways.
#
# The **manifold** decodes a regular grid of codes. The grid is spaced evenly in
# the *quantiles* of the standard Normal (from 5% to 95% on each axis), so each
# cell carries the same prior mass. Decoding a *given* code uses a third handler,
# `poutine.condition(model, data={"z": z_grid})`, which fixes the named site to
# the given value; the package's `latent_manifold` does this.
#
# The **latent space** plot shows the encoder's means $\mu_\phi(x)$ of test
# images, coloured by their digit label, which the model never saw. Digits of one
# class gather in regions of their own: the model found the classes without
# labels. The KL term keeps the whole cloud within a few units of the origin,
# where the prior has its mass.

# %%
print(f"2-D model, Trace_ELBO, {EPOCHS_2D} epochs:")
fit_2d = fit_vae(
    data,
    elbo="trace",
    epochs=EPOCHS_2D,
    latent_dim=2,
    on_epoch_end=report_epoch("2-D"),
    **TRAINING,
)

GRID = 20
fig = plot_image_grid(
    latent_manifold(fit_2d.vae, GRID),
    IMAGE_SHAPE,
    ncols=GRID,
    title="Decoded grid of codes: z1 left to right, z2 bottom to top (5%-95%)",
)
save_figure(fig, OUT / "manifold.png")
fig

# %%
shown = data.test[:5000]
fig = plot_latent_scatter(
    encoded_means(fit_2d.vae, shown),
    data.test_labels[: len(shown)],
    title=f"Encoder means of {len(shown)} test images (2-D model)",
)
save_figure(fig, OUT / "latent_space.png")
fig

# %% [markdown]
# ## A tighter bound: importance weighting
#
# The ELBO is a bound, and its gap is the KL from $q_\phi$ to the true posterior,
# so it understates how well the model fits. The *importance-weighted* bound of
# Burda et al. (2015) draws $K$ codes $z_1, \dots, z_K \sim q_\phi(z \mid x)$ and
# averages the importance weights $w_k = p_\theta(x, z_k) / q_\phi(z_k \mid x)$
# *inside* the logarithm:
#
# $$
# \mathcal{L}_K(x) = \mathbb{E}\Big[\log \frac{1}{K} \sum_{k=1}^{K} w_k\Big],
# \qquad
# \mathrm{ELBO} = \mathcal{L}_1 \le \mathcal{L}_{10} \le \mathcal{L}_{100}
#     \le \dots \le \log p_\theta(x).
# $$
#
# By Jensen's inequality the logarithm of an average is at least the average of
# the logarithms, so $\mathcal{L}_K$ is never below the ELBO, and it approaches
# $\log p_\theta(x)$ as $K$ grows. We evaluate the main model on the first
# test images with several $K$. Each evaluation also averages $\log w_k$ over
# the same draws, an estimate of the ELBO itself: it does not move with $K$
# (only its noise shrinks), and at $K = 1$ the two numbers are the same.

# %%
bounds = {}
for k in IWAE_KS:
    bounds[k] = fit.evaluate(iwae_samples=k, num_images=IWAE_IMAGES, seed=SEED)
    print(
        f"K = {k:3}: IWAE bound {bounds[k]['iwae']:.3f}, ELBO {bounds[k]['elbo']:.3f} "
        f"(nats per image, {min(IWAE_IMAGES, len(data.test))} test images)"
    )
    result(f"iwae_K{k}", bounds[k]["iwae"])
    result(f"iwae_elbo_K{k}", bounds[k]["elbo"])

fig, (ax,) = new_figure(size=4.5)
ax.plot(
    IWAE_KS,
    [bounds[k]["iwae"] for k in IWAE_KS],
    "o-",
    label=r"IWAE bound $\mathcal{L}_K$",
)
ax.plot(
    IWAE_KS,
    [bounds[k]["elbo"] for k in IWAE_KS],
    "s--",
    color="tab:red",
    label="ELBO (mean of log w over the same K draws)",
)
ax.set_xscale("log")
ax.set_xticks(IWAE_KS, [str(k) for k in IWAE_KS])
ax.set(
    title="Importance-weighted bound against K",
    xlabel="importance samples K (log scale)",
    ylabel="bound on log p(x) (nats per image)",
)
ax.legend()
ax.grid(alpha=0.3)
save_figure(fig, OUT / "iwae.png")
fig

# %% [markdown]
# In the full run (10 epochs, the first 1000 test images) the ELBO was -101.96
# nats per image, $\mathcal{L}_{10}$ -98.49 and $\mathcal{L}_{100}$ -97.18.
# The bound rises with $K$, steeply at first and then slowly. The ELBO's gap is
# exactly the KL divergence from $q_\phi(z \mid x)$ to the true posterior, and
# importance weighting closes part of it at test time without retraining
# anything. How far $\mathcal{L}_{100}$ still is from $\log p_\theta(x)$ is not
# known; it shrinks further as $K$ grows.
#
# ## Summary
#
# * A VAE is two Pyro programs: a model with a latent `z` and an observed `x`
#   inside a plate over images, and an amortized guide whose `z` site is computed
#   by an encoder network.
# * SVI maximizes the ELBO, reconstruction minus a KL regulariser that keeps the
#   codes close to the prior; the analytic KL gives the same objective with less
#   noise.
# * Pyro's handlers make criticism short: `trace` records a run, `replay` reuses
#   the guide's codes in the model (reconstructions), `condition` fixes codes by
#   hand (the manifold).
# * The importance-weighted bound is a better measure of the fit than the ELBO.

# %%
print(f"Finished in {time.perf_counter() - STARTED:.0f} s")
