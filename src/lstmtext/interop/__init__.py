"""Interoperability with other frameworks' model files (``lstmtext.interop.keras``)."""
