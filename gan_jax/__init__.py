"""gan_jax: Generative Adversarial Networks in JAX/Flax.

Importing the package has no side effects and does not import TensorFlow.
"""
__version__ = "0.1.0"
