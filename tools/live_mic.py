#!/usr/bin/env python
"""Live microphone dictation: the same as ``speechlstm listen`` (a thin script over speechlstm.listen).

Usage::

    python tools/live_mic.py --list-devices
    python tools/live_mic.py [--model DIR] [--device NAME|INDEX] [--samplerate HZ] [--duration SECONDS]
                             [--format txt|json] [--output FILE]

Talk: the partial text updates in place; each utterance is printed on its own line when you pause. Ctrl-C
finishes the current utterance and exits.
"""

from __future__ import annotations

import sys


def main(argv=None) -> int:
    from speechlstm.cli import main as cli_main

    return cli_main(["listen", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
