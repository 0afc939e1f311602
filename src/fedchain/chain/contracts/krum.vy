# pragma version 0.4.3
"""
@title krum
@notice Krum's, MultiKrum's and Bulyan's selections from a round's squared
        distances, for challenges.vy (open_table): the exact integer
        arithmetic of learning.aggregate.krum and bulyan. A contract of its
        own, stateless, because challenges.vy is at the EIP-170 code size
        limit without it.
@dev `d` holds the squared distance of reveal indices i < j at
     j * (j - 1) / 2 + i; masks are bit masks over reveal indices.
"""

MAX_TABLE: constant(uint256) = 64        # reveals a distance table may cover
MAX_PAIRS: constant(uint256) = 2016      # MAX_TABLE * (MAX_TABLE - 1) / 2
BPS: constant(uint256) = 10_000          # one seat, in basis points (fedchain.vy's seats_bps)
import layout

U64: constant(uint256) = layout.U64
MAX_STEPS: constant(uint256) = 1024      # Bulyan's selection steps: at most one a seat (a round's seats are at most reveals + k)


@internal
@pure
def _krum_scores(members: DynArray[uint256, MAX_TABLE], d: DynArray[uint256, MAX_PAIRS],
                 f: uint256, seats: DynArray[uint256, MAX_TABLE]) -> DynArray[uint256, MAX_TABLE]:
    """
    @dev Each member's Krum score among `members` (reveal indices), as
         learning.aggregate.krum.krum_scores computes it, counted in seats
         (`seats[i]`, basis points, for reveal index i; empty: one seat each):
         with S seats in all, the sum of its distances to the nearest
         k = max(1, S - f - 2) seats of the others, its own other seats
         first (at distance 0), each seat weighing its distance. That is all
         S - 1 other seats' distances but the `drop` = S - 1 - k largest,
         kept in `top` (distance * 2**64 + seats, descending), the last one
         possibly counted in part.
    """
    n: uint256 = len(members)
    out: DynArray[uint256, MAX_TABLE] = []
    if n < 2:
        return [0] if n == 1 else out  # no other member: no distance to count
    total_seats: uint256 = n * BPS
    if len(seats) > 0:
        total_seats = 0
        for m: uint256 in members:
            total_seats += seats[m]
    need: uint256 = max(total_seats, (f + 3) * BPS) - (f + 2) * BPS
    # Unchecked arithmetic where it cannot wrap: indices are below 64, a distance below
    # 2**80 (2**54 a chunk, at most 2**20 chunks) and seats below 2**64, so a weighted
    # row sum stays below 2**150.
    weighed: bool = len(seats) > 0
    for a: uint256 in range(n, bound=MAX_TABLE):
        ma: uint256 = members[a]
        # every member's other seats, its own included (Bulyan's members may have less than
        # one seat left: then none of its own)
        others: uint256 = 0
        if weighed:
            others = total_seats - min(seats[ma], BPS)
        else:
            others = total_seats - BPS
        drop: uint256 = others - min(need, others)
        top: DynArray[uint256, MAX_TABLE] = []
        top_seats: uint256 = 0
        smallest: uint256 = 0  # the smallest distance in `top`
        total: uint256 = 0
        for b: uint256 in range(n, bound=MAX_TABLE):
            if a == b:
                continue
            mb: uint256 = members[b]
            x: uint256 = 0
            if ma < mb:
                x = d[unsafe_add(unsafe_div(unsafe_mul(mb, unsafe_sub(mb, 1)), 2), ma)]
            else:
                x = d[unsafe_add(unsafe_div(unsafe_mul(ma, unsafe_sub(ma, 1)), 2), mb)]
            w: uint256 = BPS
            if weighed:
                w = seats[mb]
            total = unsafe_add(total, unsafe_mul(x, w))
            if drop == 0 or (top_seats >= drop and x <= smallest):
                continue
            # insert, largest first, then let go of the smallest while the rest still covers `drop`
            top.append(0)
            p: uint256 = unsafe_sub(len(top), 1)
            for _: uint256 in range(MAX_TABLE):
                if p == 0 or top[unsafe_sub(p, 1)] >> 64 >= x:
                    break
                top[p] = top[unsafe_sub(p, 1)]
                p = unsafe_sub(p, 1)
            top[p] = (x << 64) | w
            top_seats = unsafe_add(top_seats, w)
            for _: uint256 in range(MAX_TABLE):
                last: uint256 = top[unsafe_sub(len(top), 1)] & U64
                if unsafe_sub(top_seats, last) < drop:
                    break
                top_seats = unsafe_sub(top_seats, last)
                top.pop()
            smallest = top[unsafe_sub(len(top), 1)] >> 64
        for t: uint256 in top:
            total = unsafe_sub(total, unsafe_mul(t >> 64, t & U64))
        if top_seats > drop:  # the smallest kept distance is dropped only in part
            total = unsafe_add(total, unsafe_mul(smallest, unsafe_sub(top_seats, drop)))
        out.append(total)
    return out


@internal
@pure
def _members(mask: uint256, reveals: uint256) -> DynArray[uint256, MAX_TABLE]:
    out: DynArray[uint256, MAX_TABLE] = []
    for i: uint256 in range(reveals, bound=MAX_TABLE):
        if (mask >> i) & 1 == 1:
            out.append(i)
    return out


@external
@pure
def krum_selection(accepted: uint256, reveals: uint256, d: DynArray[uint256, MAX_PAIRS], f: uint256,
                    m_: uint256, seats: DynArray[uint256, MAX_TABLE]) -> uint256:
    """
    @dev Krum's choice among the accepted reveals (a bit mask), as
         learning.aggregate.krum makes it: the lowest Krum scores win (the
         lower reveal index on a tie) until m seats are kept (m = 0: S - f
         seats, at least one); the last one kept may be kept in part, which
         is recorded as its kept seats (bits 64-127) and its reveal index + 1
         (bits 128-191). Fewer than 2f + 3 or m seats' worth of accepted
         updates: none (the round keeps its model).
    """
    idx: DynArray[uint256, MAX_TABLE] = self._members(accepted, reveals)
    n: uint256 = len(idx)
    total: uint256 = 0
    for i: uint256 in idx:
        total += seats[i]
    if total < (2 * f + 3) * BPS or total < m_ * BPS:
        return 0
    room: uint256 = m_ * BPS
    if m_ == 0:
        room = max(total, (f + 1) * BPS) - f * BPS
    score: DynArray[uint256, MAX_TABLE] = self._krum_scores(idx, d, f, seats)
    chosen: uint256 = 0
    for a: uint256 in range(n, bound=MAX_TABLE):
        sa: uint256 = score[a]
        before: uint256 = 0  # the seats of the better ones (below 64 * 2**64: unchecked)
        for b: uint256 in range(n, bound=MAX_TABLE):
            if score[b] < sa or (score[b] == sa and b < a):
                before = unsafe_add(before, seats[idx[b]])
        if before < room:
            chosen |= 1 << idx[a]
            if room - before < seats[idx[a]]:
                chosen |= ((room - before) << 64) | ((idx[a] + 1) << 128)
    return chosen


@external
@pure
def bulyan_selection(accepted: uint256, reveals: uint256, d: DynArray[uint256, MAX_PAIRS], f: uint256,
                     seats: DynArray[uint256, MAX_TABLE]) -> DynArray[uint256, MAX_TABLE]:
    """
    @dev Bulyan's choice (learning.aggregate.bulyan.select_bulyan), counted in
         seats (`seats[i]` for reveal index i, basis points): theta = S - 2f
         seats are chosen one at a time, each time one seat (or what is left
         of one) of the member with the lowest Krum score over the seats left
         (the lower reveal index on a tie). Returns the seats chosen of each
         reveal index; fewer than 4f + 3 seats' worth of accepted updates:
         none (empty).
    """
    members: DynArray[uint256, MAX_TABLE] = self._members(accepted, reveals)
    left: DynArray[uint256, MAX_TABLE] = seats  # the seats of each not chosen yet
    chosen: DynArray[uint256, MAX_TABLE] = []
    room: uint256 = 0
    for i: uint256 in range(reveals, bound=MAX_TABLE):
        chosen.append(0)
        if (accepted >> i) & 1 == 1:
            room += seats[i]
    if room < (4 * f + 3) * BPS:
        return []
    room -= 2 * f * BPS
    for _: uint256 in range(MAX_STEPS):
        if room == 0:
            break
        cand: DynArray[uint256, MAX_TABLE] = []
        for m: uint256 in members:
            if left[m] > 0:
                cand.append(m)
        score: DynArray[uint256, MAX_TABLE] = self._krum_scores(cand, d, f, left)
        best: uint256 = 0
        for a: uint256 in range(1, len(cand), bound=MAX_TABLE):
            if score[a] < score[best]:  # members are in reveal order: the first lowest wins ties
                best = a
        i: uint256 = cand[best]
        take: uint256 = min(min(BPS, left[i]), room)
        chosen[i] += take
        left[i] -= take
        room -= take
    assert room == 0, "krum: too many seats"
    return chosen
