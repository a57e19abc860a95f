from hitl_harness import env  # noqa: F401  (the fixture)
