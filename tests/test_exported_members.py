import hitl_agent


def test_all_lists_every_public_name_sorted() -> None:
    public = sorted(
        (name for name in vars(hitl_agent) if not name.startswith("_") or name == "__version__"),
        key=str.casefold,
    )
    public = [
        name
        for name in public
        if not isinstance(getattr(hitl_agent, name), type(hitl_agent))  # submodules
    ]
    assert sorted(hitl_agent.__all__, key=str.casefold) == public
