"""The baseline: the straightforward client the Aspose OCR Cloud tutorials describe.

Get a token once; then for each file, one after the other: Base64-encode it, POST it to
``RecognizeImage``, wait a couple of seconds, GET the result until the task is done (waiting a
couple of seconds between tries), decode the text and write ``<file>.txt`` beside it. It runs
as its own process (``python -m bench.baseline``) in the same harness as the daemon, against
the same server and on the same files, so the two can be compared request for request.
"""
