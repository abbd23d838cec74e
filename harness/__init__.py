"""The test and benchmark harness: generated test models, graph builders, the workflow UI/API
converter and the frontend check. Users never need it."""
