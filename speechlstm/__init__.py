"""speechlstm: Numba-accelerated speech recognition.

Audio -> log-mel/MFCC frames -> stacked bidirectional LSTM (Numba CPU kernels) -> CTC decoding.

Examples
--------
>>> from speechlstm import Recognizer            # doctest: +SKIP
>>> Recognizer("path/to/model").transcribe("a.wav").text   # doctest: +SKIP
'hello world'
"""

__version__ = "0.1.0"

__all__ = ["Recognizer", "Transcript", "Word", "load_model", "SpeechlstmError", "__version__"]


def __getattr__(name):
    # Lazy imports keep `import speechlstm` (and CLI start-up) cheap.
    if name in ("Recognizer", "Transcript", "Word"):
        from . import transcribe

        return getattr(transcribe, name)
    if name == "load_model":
        from .model import load_model

        return load_model
    if name == "SpeechlstmError":
        from .errors import SpeechlstmError

        return SpeechlstmError
    raise AttributeError(f"module 'speechlstm' has no attribute {name!r}")
