"""autoinv: search learned data-augmentation and invariance-transfer methods at scale.

Ray Tune schedules the trials (ASHA), Optuna proposes them (TPE), MLflow tracks them; see ``README.md``.
"""

__version__ = "0.1.0"
