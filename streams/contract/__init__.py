"""The wire contracts: input event v1 (``events``, ``decoder``), profile-updated v1 (``profile``), topic names
(``topics``) and their JSON Schemas (``schemas/``). Standard library and orjson only."""
