"""Local emulators of the customer-side providers, shared by the demo and the tests.

`runner.start_emulators()` starts Azure OpenAI, Bedrock Runtime, Gemini (AI Studio) and Vertex AI servers
in-process; `python -m addon.emulators --state-dir DIR` does the same out of process. The scripted
behaviour (``Echo: ...`` answers and the ``EMULATE:...`` directives) is documented in `content.py`.
"""
