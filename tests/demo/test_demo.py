"""``imsdk demo``: the whole demo as a process, and its tally, media and options on their own."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from imsdk_server._demo import DemoOptions, DemoResult, Tally, make_png, make_wav, summary_line
from imsdk_server.media import image_dimensions
from imsdk_server.media._sniff import PNG, sniff

IMSDK = [sys.executable, "-c", "import sys; from imsdk_server._cli import main; sys.exit(main())"]
LAST_LINE = re.compile(r"^demo: sent (\d+), delivered (\d+), lost (\d+), duplicates (\d+)$")


def last_line(stdout: str) -> tuple[int, int, int, int]:
    line = stdout.rstrip("\n").splitlines()[-1]
    match = LAST_LINE.match(line)
    assert match, line
    sent, delivered, lost, dups = (int(g) for g in match.groups())
    return sent, delivered, lost, dups


@pytest.mark.slow
def test_the_demo_runs_by_itself_and_every_message_arrives_once() -> None:
    run = subprocess.run(
        [*IMSDK, "demo", "--seconds", "5", "--seed", "7"], capture_output=True, text=True, timeout=90
    )
    assert run.returncode == 0, run.stdout + run.stderr
    sent, delivered, lost, dups = last_line(run.stdout)
    assert sent == delivered > 0
    assert (lost, dups) == (0, 0)
    out = run.stdout
    # every content type went through, the media through the media service
    for kind in ("text", "image", "voice", "location"):
        assert re.search(rf"<- \w+ +{kind} ", out), kind
    assert "image/png" in out
    assert "audio/wav" in out
    # the network switches in the middle of the burst, and the burst arrives in order
    for change in ("wifi -> 4g", "4g -> 2g", "2g -> wifi"):
        assert f"network   {change}" in out
    burst = [int(n) for n in re.findall(r"'burst (\d+)/12'", out)]
    assert burst == list(range(1, 13))
    # the away user catches up on stored messages and gets only the latest friend request
    assert "dave     goes offline" in out
    assert "dave     comes back online" in out
    assert "(stored while away)" in out
    requests = re.findall(r"dave +notification  friend_request: '([^']*)'", out)
    assert requests == ["carol sent you a friend request too"]
    assert "not delivered: offline (RECEIVER_OFFLINE)" in out
    assert re.search(r"announcement to everyone: alice delivered, bob delivered, carol delivered, dave ", out)
    assert len(re.findall(r"notification  announcement:", out)) == 3
    assert len(re.findall(r"profile   bob is now 'Bob the Builder'", out)) == 3
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_ctrl_c_stops_the_demo_cleanly_with_the_summary_last() -> None:
    proc = subprocess.Popen(
        [*IMSDK, "demo", "--seconds", "60", "--quiet", "--users", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(8)  # started and chatting
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert "demo: interrupted, shutting down" in stdout
    assert "summary:" in stdout
    sent, delivered, lost, dups = last_line(stdout)
    assert sent == delivered > 0
    assert (lost, dups) == (0, 0)
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--users", "2"], "--users must be between 3 and 16, not 2"),
        (["--users", "17"], "--users must be between 3 and 16, not 17"),
        (["--seconds", "0.5"], "--seconds must be between 1 and 600, not 0.5"),
        (["--seconds", "x"], "invalid float value"),
    ],
)
def test_bad_options_are_one_line_and_status_2(args: list[str], message: str) -> None:
    run = subprocess.run([*IMSDK, "demo", *args], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1
    assert message in run.stderr


# ------------------------------------------------------------------------------------------------ the tally


def tally_of(steps: list[tuple[str, tuple[object, ...]]]) -> Tally:
    tally = Tally()
    for what, args in steps:
        getattr(tally, what)(*args)
    return tally


ACK_1 = ("acked", ("alice", "bob", 1, 101, 1, "text"))
ACK_2 = ("acked", ("alice", "bob", 2, 102, 2, "image"))
GOT_1 = ("got", ("bob", "alice", 1, "c", 1))
GOT_2 = ("got", ("bob", "alice", 2, "c", 2))


@pytest.mark.parametrize(
    ("steps", "counts", "unexpected", "out_of_order"),
    [
        ([], (0, 0, 0, 0), 0, 0),
        ([ACK_1, GOT_1], (1, 1, 0, 0), 0, 0),
        ([ACK_1, ACK_2, GOT_1], (2, 1, 1, 0), 0, 0),  # one never arrived
        ([ACK_1, GOT_1, GOT_1], (1, 1, 0, 1), 0, 1),  # shown twice (and the second is not in order)
        ([GOT_1, ACK_1], (1, 1, 0, 0), 0, 0),  # the receiver may be faster than the sender's ack
        ([ACK_1, ("got", ("carol", "alice", 1, "c2", 1))], (1, 0, 1, 0), 1, 0),  # to the wrong user
        ([ACK_1, ACK_2, GOT_2, GOT_1], (2, 2, 0, 0), 0, 1),  # order broken
        ([ACK_1, ("got", ("bob", "alice", 9, "c", 0))], (1, 0, 1, 0), 1, 0),  # never acknowledged
        ([ACK_1, ("acked", ("alice", "bob", 1, 101, 1, "text", True)), GOT_1], (1, 1, 0, 0), 0, 0),  # resend
    ],
)
def test_tally_counts_from_what_was_acknowledged_and_received(
    steps: list[tuple[str, tuple[object, ...]]],
    counts: tuple[int, int, int, int],
    unexpected: int,
    out_of_order: int,
) -> None:
    tally = tally_of(steps)
    assert (tally.sent, tally.delivered, tally.lost, tally.duplicates) == counts
    assert tally.unexpected == unexpected
    assert tally.out_of_order == out_of_order
    assert tally.ok is (counts[2] == counts[3] == unexpected == out_of_order == 0)
    assert summary_line(tally) == "demo: sent {}, delivered {}, lost {}, duplicates {}".format(*counts)


def test_an_interruption_may_cut_off_an_ack_but_nothing_else() -> None:
    """Interrupted between the receiver's copy and the sender's ack, a run still exits 130 (interrupted), not
    1; a loss, a duplicate or a reordering still fails it."""
    never_acked = tally_of([ACK_1, GOT_1, ("got", ("bob", "alice", 9, "c", 0))])
    assert (never_acked.ok, never_acked.ok_for(interrupted=True)) == (False, True)
    assert DemoResult(never_acked, interrupted=True).exit_status == 130
    assert DemoResult(never_acked, interrupted=False).exit_status == 1
    lost = tally_of([ACK_1, ACK_2, GOT_1, ("got", ("bob", "alice", 9, "c", 0))])
    assert DemoResult(lost, interrupted=True).exit_status == 1


def test_tally_missing_lists_what_has_not_arrived() -> None:
    tally = tally_of([ACK_1, ACK_2, GOT_2])
    assert tally.missing() == [("alice", 1)]
    assert tally.kinds() == {"text": 1, "image": 1}


# -------------------------------------------------------------------------------------------- media, options


@pytest.mark.parametrize(("width", "height"), [(1, 1), (16, 72), (96, 96), (300, 20)])
def test_made_images_are_pngs_the_media_service_measures(width: int, height: int) -> None:
    data = make_png(width, height, shade=3)
    assert sniff(data[:64]) is PNG
    assert image_dimensions(PNG, data) == (width, height)


@pytest.mark.parametrize("ms", [100, 400, 2000])
def test_made_voice_clips_are_wav_of_the_asked_length(ms: int) -> None:
    import io
    import wave

    data = make_wav(ms)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getnframes() == 8000 * ms // 1000
    kind = sniff(data[:64])
    assert kind is not None
    assert kind.mime == "audio/wav"


def test_options_defaults() -> None:
    options = DemoOptions()
    assert (options.seconds, options.users, options.seed, options.quiet) == (10.0, 4, None, False)
