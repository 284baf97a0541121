"""Every error from a process carries what the tool said: its stderr is in the message."""

from __future__ import annotations

from harness.errors import OUTPUT_LIMIT, BackendError, ExecError


def test_backend_error_message_carries_the_tool_output():
    err = BackendError("wiring pods to the node", "`ip -n np-x-node -batch -` exit 1",
                       "RTNETLINK answers: File exists\nCommand failed -:1")
    assert str(err) == ("while wiring pods to the node: `ip -n np-x-node -batch -` exit 1:\n"
                        "  RTNETLINK answers: File exists\n  Command failed -:1")


def test_backend_error_without_output_and_with_output_already_in_the_cause():
    assert str(BackendError("doing x", "it broke")) == "while doing x: it broke"
    assert str(BackendError("doing x", "nft -f exit 1: Error: syntax", "Error: syntax")) == \
        "while doing x: nft -f exit 1: Error: syntax"


def test_long_output_is_cut_to_its_end_where_tools_say_why():
    err = BackendError("building", "exit 2", "x" * 5000 + "the reason")
    assert str(err).endswith("the reason")
    assert len(str(err)) < OUTPUT_LIMIT + 100


def test_exec_error_message_carries_the_output():
    err = ExecError(["mount", "-t", "tmpfs"], "preparing: exit status 32",
                    "mount: /run: permission denied.")
    assert str(err) == ("exec failed: preparing: exit status 32: mount -t tmpfs:\n"
                        "  mount: /run: permission denied.")


def test_nft_errors_show_the_numbered_lines_nft_names():
    from harness.backends.local.nft import script_context
    text = "\n".join(f"line {i}" for i in range(1, 41))
    ctx = script_context(text, "-:30:3-8: Error: syntax error, unexpected junk\nline 30\n  ^^^^")
    assert ctx.splitlines() == [f"{i:4} line {i}" for i in range(27, 34)]
    assert len(script_context(text, "Error: no line named").splitlines()) == 20
