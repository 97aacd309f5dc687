"""Double-entry journal: balanced entries, the wallet flows and the available >= 0 invariant."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.core import ledger as lg
from quantdesk.core.charges import COMPONENTS, Charges
from quantdesk.core.errors import ErrorCode, InvalidInput, InvalidState
from quantdesk.core.ledger import EntryKind, JournalEntry, Posting
from quantdesk.core.orders import Side

D = Decimal
INR = "INR"
U = 7


def test_an_unbalanced_entry_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        JournalEntry(
            EntryKind.DEPOSIT,
            (Posting("user:7:cash", INR, D("100")), Posting("external:deposits", INR, D("-99"))),
        )
    assert exc.value.code is ErrorCode.LEDGER_UNBALANCED
    assert exc.value.details["imbalance"] == {"INR": "1"}


def test_balance_is_checked_per_currency() -> None:
    with pytest.raises(InvalidInput) as exc:
        JournalEntry(
            EntryKind.DEPOSIT,
            (Posting("user:7:cash", INR, D("100")), Posting("external:deposits", "USD", D("-100"))),
        )
    assert exc.value.code is ErrorCode.LEDGER_UNBALANCED


@pytest.mark.parametrize(
    ("account", "currency", "amount"),
    [
        ("user:7:cash", INR, D(0)),
        ("user:7:cash", INR, D("NaN")),
        ("cash", INR, D(1)),
        ("User:7:cash", INR, D(1)),
        ("user:7:cash", "inr", D(1)),
    ],
)
def test_a_malformed_posting_is_refused(account: str, currency: str, amount: Decimal) -> None:
    with pytest.raises(InvalidInput) as exc:
        Posting(account, currency, amount)
    assert exc.value.code is ErrorCode.LEDGER_BAD_POSTING


def test_deposit_moves_money_from_external_to_the_users_cash() -> None:
    entry = lg.deposit(U, D("1000"), INR, ref="dep-1", memo="admin top-up")
    assert entry.kind is EntryKind.DEPOSIT
    b = lg.balances([entry])
    assert b[("user:7:cash", INR)] == D("1000")
    assert b[("external:deposits", INR)] == D("-1000")
    assert lg.wallet(b, U, INR) == lg.WalletBalance(available=D("1000"), held=D(0))


def test_hold_moves_cash_to_held_and_keeps_the_total() -> None:
    b = lg.balances([lg.deposit(U, D("1000"), INR, ref="d")])
    b = lg.balances([lg.hold(U, D("400"), INR, available=D("1000"), ref="o1")], start=b)
    w = lg.wallet(b, U, INR)
    assert (w.available, w.held, w.total) == (D("600"), D("400"), D("1000"))


def test_hold_or_withdrawal_beyond_available_is_refused() -> None:
    with pytest.raises(InvalidState) as exc:
        lg.hold(U, D("100.01"), INR, available=D("100"), ref="o1")
    assert exc.value.code is ErrorCode.WALLET_INSUFFICIENT_FUNDS
    with pytest.raises(InvalidState):
        lg.withdrawal(U, D("100.01"), INR, available=D("100"), ref="w1")


@pytest.mark.parametrize("amount", [D(0), D(-1)])
def test_builders_refuse_non_positive_amounts(amount: Decimal) -> None:
    with pytest.raises(InvalidInput) as exc:
        lg.deposit(U, amount, INR, ref="d")
    assert exc.value.code is ErrorCode.LEDGER_BAD_AMOUNT


def test_buy_fill_releases_its_hold_and_pays_the_venue() -> None:
    entry = lg.settle_fill(
        U, Side.BUY, 10, D("100.05"), INR, venue="paper", released=D("1000.50"), ref="t1"
    )
    b = lg.balances([entry])
    assert entry.kind is EntryKind.TRADE
    assert b[("user:7:held", INR)] == D("-1000.50")
    assert b[("user:7:cash", INR)] == D(0)
    assert b[("venue:paper:settlement", INR)] == D("1000.50")


def test_sell_fill_receives_proceeds_from_the_venue() -> None:
    b = lg.balances([lg.settle_fill(U, Side.SELL, 10, D("101"), INR, venue="paper", ref="t2")])
    assert b[("user:7:cash", INR)] == D("1010")
    assert b[("venue:paper:settlement", INR)] == D("-1010")


def test_charges_make_one_entry_per_component_to_fee_or_tax_accounts() -> None:
    entries = lg.charges(
        U,
        {"brokerage": D("20"), "stt": D("28"), "exchange_charge": D("6.45"), "gst": D("0")},
        INR,
        ref="t1",
    )
    assert [(e.kind, e.memo) for e in entries] == [
        (EntryKind.FEE, "brokerage"),
        (EntryKind.TAX, "stt"),
        (EntryKind.FEE, "exchange_charge"),
    ]
    assert all(len(e.postings) == 2 for e in entries)
    b = lg.balances(entries)
    assert b[("fees:brokerage", INR)] == D("20")
    assert b[("taxes:stt", INR)] == D("28")
    assert b[("user:7:cash", INR)] == D("-54.45")


def test_a_negative_charge_is_a_refund_back_to_cash() -> None:
    (entry,) = lg.charges(U, {"stt": D("-100")}, INR, ref="recompute")
    b = lg.balances([entry])
    assert entry.memo == "stt refund"
    assert (b[("user:7:cash", INR)], b[("taxes:stt", INR)]) == (D("100"), D("-100"))


def test_a_charges_adjustment_is_one_balanced_entry_with_the_net_on_cash() -> None:
    entry = lg.charges_adjustment(
        U,
        {
            "brokerage": D("30.15"),
            "stt": D("-88"),
            "exchange_charge": D(0),
            "dp_charge": D("-15.34"),
        },
        INR,
        ref="cnc-same-day:7:NSE:INFY:2026-11-25",
        memo="recharged as intraday",
    )
    assert entry is not None and entry.kind is EntryKind.ADJUSTMENT
    assert [(p.account, p.amount) for p in entry.postings] == [
        ("user:7:cash", D("73.19")),
        ("fees:brokerage", D("30.15")),
        ("taxes:stt", D("-88")),
        ("fees:dp_charge", D("-15.34")),
    ]
    assert lg.charges_adjustment(U, {"stt": D(0), "gst": D(0)}, INR, ref="r") is None
    # Components that cancel out move between the charge accounts only.
    netted = lg.charges_adjustment(U, {"brokerage": D("5"), "stt": D("-5")}, INR, ref="r")
    assert netted is not None and {p.account for p in netted.postings} == {
        "fees:brokerage",
        "taxes:stt",
    }
    with pytest.raises(InvalidInput):
        lg.charges_adjustment(U, {"stt": D("NaN")}, INR, ref="r")


def test_charges_post_every_component_of_the_charges_calculator() -> None:
    amounts = Charges(*(D(i + 1) for i in range(len(COMPONENTS))))
    entries = lg.charges(U, amounts.as_dict(), INR, ref="t1")
    assert [e.memo for e in entries] == list(COMPONENTS)
    assert -lg.balances(entries)[("user:7:cash", INR)] == amounts.total


def test_release_for_fill_releases_what_is_spent_and_the_rest_on_the_last_fill() -> None:
    assert lg.release_for_fill(D("1000"), D("300"), last=False) == D("300")
    assert lg.release_for_fill(D("200"), D("300"), last=False) == D("200")
    assert lg.release_for_fill(D("700"), D("300"), last=True) == D("700")


# --- properties ---------------------------------------------------------------------------------

amounts = st.integers(min_value=1, max_value=10_000_000).map(lambda n: D(n).scaleb(-2))
postings = st.builds(
    Posting,
    account=st.sampled_from(["user:1:cash", "user:1:held", "fees:brokerage", "external:deposits"]),
    currency=st.sampled_from([INR, "USD"]),
    amount=amounts | amounts.map(lambda a: -a),
)


@given(st.lists(postings, min_size=1, max_size=8))
def test_an_entry_exists_only_if_its_postings_balance_per_currency(ps: list[Posting]) -> None:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for p in ps:
        sums[p.currency] += p.amount
    balanced = len(ps) >= 2 and all(s == 0 for s in sums.values())
    if balanced:
        JournalEntry(EntryKind.TRADE, tuple(ps))
        return
    with pytest.raises(InvalidInput) as exc:
        JournalEntry(EntryKind.TRADE, tuple(ps))
    assert exc.value.code is ErrorCode.LEDGER_UNBALANCED


@given(st.lists(postings, min_size=1, max_size=6))
def test_balancing_any_postings_against_one_account_always_builds(ps: list[Posting]) -> None:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for p in ps:
        sums[p.currency] += p.amount
    plugs = [Posting("venue:paper:settlement", c, -s) for c, s in sums.items() if s != 0]
    if len(ps) + len(plugs) < 2:
        return
    entry = JournalEntry(EntryKind.TRADE, (*ps, *plugs))
    assert sum((b for b in lg.balances([entry]).values()), D(0)) == 0


# A random day of one user: deposits, withdrawals, buy orders that hold their worst case plus
# estimated charges, fills at or better than the limit with charges within the estimate, and
# cancels. The OMS's use of the builders is replayed with a small model of its order book.
ops = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), amounts),
        st.tuples(st.just("withdraw"), amounts),
        st.tuples(
            st.just("order"),
            st.integers(min_value=1, max_value=50),  # quantity
            st.integers(min_value=100, max_value=200_000).map(lambda n: D(n).scaleb(-2)),
            st.integers(min_value=0, max_value=5_000).map(lambda n: D(n).scaleb(-2)),
        ),
        st.tuples(
            st.just("fill"),
            st.integers(min_value=0, max_value=20),  # which order
            st.integers(min_value=1, max_value=50),  # quantity
            st.integers(min_value=0, max_value=50),  # price improvement, in % of the limit
            st.integers(min_value=0, max_value=100),  # share of the estimate charged, in %
        ),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=20)),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(ops)
def test_correct_use_of_the_builders_never_makes_available_negative(ops: list[tuple]) -> None:
    entries: list[JournalEntry] = []
    b: dict[tuple[str, str], Decimal] = {}
    # order id -> [remaining quantity, limit, estimated charges left, held for the order]
    book: dict[int, list] = {}
    next_id = 0  # order ids are never reused (len(book) would be, after a fill or cancel)

    def post(*new: JournalEntry) -> None:
        nonlocal b
        entries.extend(new)
        b = lg.balances(new, start=b)

    for op in ops:
        available = lg.wallet(b, U, INR).available
        kind = op[0]
        if kind == "deposit":
            post(lg.deposit(U, op[1], INR, ref="d"))
        elif kind == "withdraw":
            if op[1] <= available:
                post(lg.withdrawal(U, op[1], INR, available=available, ref="w"))
        elif kind == "order":
            qty, limit, estimate = op[1], op[2], op[3]
            amount = qty * limit + estimate
            if amount > available:
                with pytest.raises(InvalidState):
                    lg.hold(U, amount, INR, available=available, ref="o")
                continue
            post(lg.hold(U, amount, INR, available=available, ref=f"o{next_id}"))
            book[next_id] = [qty, limit, estimate, amount]
            next_id += 1
        elif kind == "fill" and op[1] in book:
            state = book[op[1]]
            qty = min(op[2], state[0])
            price = (state[1] * (100 - op[3]) / 100).quantize(D("0.01"))
            fee = (state[2] * op[4] / 100).quantize(D("0.01"), "ROUND_DOWN")
            last = qty == state[0]
            released = lg.release_for_fill(state[3], qty * price + fee, last=last)
            post(
                lg.settle_fill(
                    U, Side.BUY, qty, price, INR, venue="paper", released=released, ref="t"
                ),
                *lg.charges(U, {"brokerage": fee}, INR, ref="t"),
            )
            state[0] -= qty
            state[2] -= fee
            state[3] -= released
            if last:
                del book[op[1]]
        elif kind == "cancel" and op[1] in book:
            if book[op[1]][3] > 0:
                post(lg.release(U, book[op[1]][3], INR, ref="c"))
            del book[op[1]]
        w = lg.wallet(b, U, INR)
        assert w.available >= 0
        assert w.held == sum((s[3] for s in book.values()), D(0))
        assert b == lg.balances(entries)
        for currency in {c for _, c in b}:
            assert sum(v for (_, c), v in b.items() if c == currency) == 0
