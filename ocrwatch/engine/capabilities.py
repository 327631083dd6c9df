"""What the local engine can do on this machine: its languages and its installed packages.

Cheap to call from the daemon: nothing here imports onnxruntime or loads a model.

The bundled recogniser (PP-OCRv6 small, multilingual) has one character set for Chinese,
Japanese (its dictionary, stored in the model's metadata, has the hiragana and katakana) and
the Latin-script languages its authors list for it. The Aspose language names
below are those languages; Vietnamese is left out although the model's authors list it,
because its character set lacks most of the precomposed tone letters Vietnamese needs.
Cyrillic, Greek-alphabet languages, Arabic, Hebrew, Korean, Thai and the Indic scripts are not
read by these models.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

from ocrwatch.engine.failures import UnsupportedLanguage

_SUPPORTED_LANGUAGES = frozenset(
    {
        "Afrikaans", "Albanian", "Azerbaijani", "Bosnian", "Catalan", "Chinese", "Croatian",
        "Czech", "Danish", "Dutch", "English", "Estonian", "Finnish", "French", "Galician",
        "German", "Hungarian", "Indonesian", "Italian", "Japanese", "Kurdish", "Latin",
        "Latvian", "Lithuanian", "Malay", "Netherlands", "Norwegian", "Occitan", "Polish",
        "Portuguese", "Quechua", "Romanian", "Serbo_Croatian", "Slovak", "Slovene", "Spanish",
        "Swahili", "Swedish", "Tagalog", "Turkish", "Uzbek",
    }
)  # fmt: skip

# Import names of what the worker needs; the distribution names are in the `engine` extra.
_REQUIRED_MODULES = ("rapidocr", "onnxruntime", "pypdfium2", "cv2", "numpy")


def supported_languages() -> frozenset[str]:
    """The Aspose ``Language`` names the bundled models can read."""
    return _SUPPORTED_LANGUAGES


def check_language(language: str) -> None:
    """Raise ``UnsupportedLanguage`` (a ``ConfigError``) unless the models read ``language``."""
    if language not in _SUPPORTED_LANGUAGES:
        raise UnsupportedLanguage(language, supported=_SUPPORTED_LANGUAGES)


def missing_modules() -> tuple[str, ...]:
    """The modules the worker needs that are not installed (empty when the engine can run)."""
    return tuple(name for name in _REQUIRED_MODULES if importlib.util.find_spec(name) is None)


def engine_name() -> str:
    """What the outputs name as their reader, e.g. in hOCR's ``ocr-system``."""
    try:
        version = importlib.metadata.version("rapidocr")
    except importlib.metadata.PackageNotFoundError:  # the engine extra is not installed
        return "ocrwatch embedded engine (RapidOCR)"
    return f"ocrwatch embedded engine (RapidOCR {version})"
