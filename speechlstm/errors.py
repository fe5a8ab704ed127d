"""Exception types: every error a user can cause is one of these, with a one-line message."""


class SpeechlstmError(Exception):
    """Base class of the errors speechlstm reports to users (one line, no traceback)."""


class AudioError(SpeechlstmError):
    """Audio that cannot be read or used: missing, empty, corrupt, not audio, NaN/Inf samples."""


class ModelError(SpeechlstmError):
    """A model directory that is missing, corrupt or inconsistent."""


class DeviceError(SpeechlstmError):
    """A compute device that was asked for but is not available."""


class LMError(SpeechlstmError):
    """A language model file that is missing, malformed or inconsistent (message: ``file:line: reason``)."""
