"""The ``profilestream`` command line: ``main`` (service, producer and state commands), ``model`` (train,
evaluate, export). Client commands run on the base install; worker and model commands need the extras."""
