"""Values that several layers of pdn must agree on, declared once (no imports, so any module,
models to cli, can use them)."""

IGNORE_INDEX = 255  # the mask label that no loss or metric counts
MIN_INPUT_SIZE = 32  # the smallest image side the networks accept (output stride 32 -> 1 site)
PRECISIONS = ("fp32", "bf16", "fp16")  # autocast dtypes of inference and training (fp16: CUDA)
EVAL_MODES = ("whole", "slide")  # whole-image or sliding-window inference
DIFFUSION_MODES = ("sweep", "layerwise")  # the two readings of the diffusion layer
RECURRENCES = ("auto", "conv1d", "gather", "triton")  # how a sweep computes its recurrent term
OPTIMIZERS = ("sgd", "adamw")
