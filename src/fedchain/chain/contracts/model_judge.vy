# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title model_judge
@notice The judge of one value of a voted model (see judging.vy for what a
        judge is): it recomputes value `coordinate` of chunk `chunk` of the
        new model by the task's rule from one chunk of the parent model, of
        every averaged update and of the voted model, and says whether the
        vote's value is wrong. challenges.vy staticcalls it with the
        challenge's calldata, after it has checked the recipe, the round, the
        leading vote and the window; it takes the bond, judges by the answer
        and pays.
@dev What is checked, for the coordinate-wise rules (see docs/decisions.md
     "Challenges"): value j of chunk c (64 fixed-point values) of the new
     model must equal clip(parent[c][j] + agg_j, +-2**23), where agg_j is, over
     the updates the quorum accepted (every reveal not in its rejected set),
       FedAvg:        floor(sum_i w_i u_i[c][j] / sum_i w_i),
                      w_i = min(samples_i, 2**20) from the reveal record;
       FedMedian:     the median (even count: floor of the middle pair's mean),
                      each update counted once per seat (seats_bps, from the
                      reveal record; learning.aggregate.fedmedian);
       FedTrimmedAvg: the floor mean without the k = floor(beta n) largest and
                      k smallest values, n and k counted in seats, each value
                      weighted by its untrimmed seats;
       Krum, MultiKrum: FedAvg's mean over Krum's selection, recomputed from
                      the squared distances the vote commits to (Distances);
       Bulyan:        over Bulyan's selection (repeated Krum on the same
                      distances), the floor mean of the n - 4f values closest
                      to their median;
     and 0 if no update was accepted (or Krum has too few). The challenger
     sends chunk c of the parent model, of every averaged update and of the
     claimed model, each with a Merkle proof against the root on chain
     (update roots are proven through their commitments), so the contract
     trusts nothing it is sent; it recomputes the one value the challenger
     says is wrong.
     For the Krum rules the averaged set is the selection open_table
     recorded in challenges.vy (read back from the caller: `selections`,
     `bulyan_seats`).
     Stateless: a contract of its own because challenges.vy would not fit
     EIP-170 (docs/decisions.md, "Contract sizes"). View functions only: no
     reentrancy surface.
"""

import fedchain
import merkle
import judging
import layout
import sumtree

initializes: judging

CHUNK: constant(uint256) = judging.CHUNK
CHUNK_BYTES: constant(uint256) = judging.CHUNK_BYTES
MAX_UPDATES: constant(uint256) = judging.MAX_UPDATES
MAX_DEPTH: constant(uint256) = sumtree.MAX_DEPTH
MAX_WEIGHT: constant(uint256) = 2**20  # FedAvg's cap on a sample count
QMAX: constant(int256) = 2**23         # fixed-point clip: |x| <= 128 at scale 2**16
RULE_FEDAVG: constant(uint256) = 1
RULE_MEDIAN: constant(uint256) = 2
RULE_TRIMMED: constant(uint256) = 3
RULE_KRUM: constant(uint256) = judging.RULE_KRUM
RULE_MULTIKRUM: constant(uint256) = 5
RULE_BULYAN: constant(uint256) = judging.RULE_BULYAN
BPS: constant(uint256) = 10_000
INDEX_MASK: constant(uint256) = judging.INDEX_MASK
SAMPLES_MASK: constant(uint256) = layout.SAMPLES_MASK
U64: constant(uint256) = judging.U64
# challenges.vy's open_table record (see there): OPENED | MALFORMED | the selection
OPENED: constant(uint256) = 2**255
MALFORMED: constant(uint256) = 2**254
SELECTION_MASK: constant(uint256) = 2**64 - 1  # MAX_TABLE reveal indices
PART_MASK: constant(uint256) = 2**128 - 1  # bits 64-191: the update kept in part (krum_selection)


interface Records:
    def selections(key: bytes32) -> uint256: view
    def bulyan_seats(key: bytes32, index: uint256) -> uint256: view


@external
@view
def challenge(
    task_id: uint256,
    round_id: uint256,
    vote: judging.Vote,
    recipe: judging.RecipeRule,
    chunk: uint256,
    coordinate: uint256,
    depth: uint256,
    nodes: DynArray[address, MAX_UPDATES],
    update_roots: DynArray[bytes32, MAX_UPDATES],
    salts: DynArray[bytes32, MAX_UPDATES],
    update_chunks: Bytes[65536],
    update_proofs: DynArray[bytes32, 5120],
    parent_chunk: Bytes[CHUNK_BYTES],
    parent_proof: DynArray[bytes32, MAX_DEPTH],
    claimed_chunk: Bytes[CHUNK_BYTES],
    claimed_proof: DynArray[bytes32, MAX_DEPTH],
) -> bool:
    """
    @notice Judge a challenge of the leading result of a round
            (challenges.challenge, same arguments): recompute value
            `coordinate` of chunk `chunk` of the new model.
    @param vote The leading vote's fields (from its Voted event).
    @param recipe The preimage of the task's recipe hash: its rule (1 FedAvg,
           2 FedMedian, 3 FedTrimmedAvg, 4 Krum, 5 MultiKrum, 6 Bulyan) and its
           parameters, its score kind and keccak256 of the recipe JSON.
    @param nodes The updates the rule averages, in reveal order: every
           accepted one, or for Krum rules the ones it selects. `update_roots`
           and `salts` their revealed roots and salts (proven by commitment).
    @param update_chunks Chunk `chunk` of each of them, concatenated (256
           bytes each); `update_proofs` their Merkle proofs, `depth` siblings
           each, concatenated.
    @param parent_chunk Chunk `chunk` of the task's current model.
    @param claimed_chunk Chunk `chunk` of the voted model.
    @dev Krum rules: the vote's table must have been opened (open_table),
         which recorded the selection; a table of the wrong size proves the
         vote wrong here. Sums that are themselves wrong are disputed by
         challenge_distance_sum and challenge_distance_leaf.
    @dev Effects: none (a view); challenges.vy settles by the answer.
         Requirements checked here: a challengeable rule, a chunk and value
         index within the model's tree, valid proofs and commitments,
         exactly the averaged updates in reveal order (for the Krum rules:
         an opened table). The caller has checked the recipe, the round, the
         vote and the window.
    @return True if the value is wrong (or the vote's table malformed).
    """
    fc: fedchain.__interface__ = judging._fedchain()
    task: fedchain.Task = staticcall fc.tasks(task_id)
    r: fedchain.Round = staticcall fc.rounds(task_id, round_id)
    rule: uint256 = recipe.rule
    assert rule >= RULE_FEDAVG and rule <= RULE_BULYAN, "challenges: rule not challengeable"
    assert depth <= MAX_DEPTH and chunk < 2**depth and coordinate < CHUNK, "challenges: bad chunk index"
    n: uint256 = len(nodes)
    assert len(update_roots) == n and len(salts) == n, "challenges: ragged inputs"
    assert len(update_chunks) == n * CHUNK_BYTES and len(update_proofs) == n * depth, "challenges: ragged inputs"
    assert len(parent_proof) == depth and len(claimed_proof) == depth, "challenges: ragged inputs"
    assert len(parent_chunk) == CHUNK_BYTES and len(claimed_chunk) == CHUNK_BYTES, "challenges: bad chunk length"

    assert merkle._verify(keccak256(parent_chunk), chunk, parent_proof, task.model_root), "challenges: bad parent proof"
    assert merkle._verify(keccak256(claimed_chunk), chunk, claimed_proof, vote.model_root), "challenges: bad claimed proof"

    # The averaged set, as a bit mask over reveal indices: every reveal not in
    # the rejected set, or Krum's selection among them.
    averaged: uint256 = 0
    key: bytes32 = keccak256(abi_encode(task_id, round_id, r.leader))  # open_table's record
    part: uint256 = 0  # Krum rules: the update kept in part, (reveal index + 1) * 2**64 + its seats kept
    malformed: bool = False
    if r.reveals > 0:
        averaged = (max_value(uint256) >> (256 - r.reveals)) & ~vote.rejected
    if rule >= RULE_KRUM:
        opened: uint256 = staticcall Records(msg.sender).selections(key)
        assert opened & OPENED != 0, "challenges: table not opened"
        malformed = opened & MALFORMED != 0
        averaged = opened & SELECTION_MASK
        part = (opened >> 64) & PART_MASK

    # the averaged updates' values at the coordinate, each as value * 2**64 + its seats
    # (basis points): the median and the trimmed mean count an update once per seat
    col: DynArray[int256, MAX_UPDATES] = []
    seats: uint256 = 0  # their sum
    acc: int256 = 0  # FedAvg's weighted sum
    total_weight: uint256 = 0
    expected: uint256 = 0  # next reveal index that must come
    for i: uint256 in range(n, bound=MAX_UPDATES):
        node: address = nodes[i]
        rec: uint256 = staticcall fc.record(task_id, round_id, node)
        assert rec & INDEX_MASK != 0, "challenges: not revealed"
        index: uint256 = (rec & INDEX_MASK) - 1
        for _: uint256 in range(MAX_UPDATES):
            if expected >= r.reveals or (averaged >> expected) & 1 == 1:
                break
            expected += 1
        assert index == expected, "challenges: not the averaged updates in reveal order"
        expected += 1
        judging._check_commitment(fc, task_id, round_id, node, update_roots[i], salts[i])
        values: Bytes[CHUNK_BYTES] = slice(update_chunks, i * CHUNK_BYTES, CHUNK_BYTES)
        # merkle._verify over update_proofs[i * depth:(i + 1) * depth], inline: an
        # internal call would copy the whole proofs array
        h: bytes32 = keccak256(values)
        at: uint256 = chunk
        for k: uint256 in range(depth, bound=MAX_DEPTH):
            sibling: bytes32 = update_proofs[i * depth + k]
            if at % 2 == 0:
                h = keccak256(concat(h, sibling))
            else:
                h = keccak256(concat(sibling, h))
            at //= 2
        assert h == update_roots[i], "challenges: bad update proof"
        seat: uint256 = (rec >> 160) & U64
        w: uint256 = min((rec >> 32) & SAMPLES_MASK, MAX_WEIGHT)
        if part >> 64 == index + 1:  # that part of its weight, at least 1
            w = max(1, w * (part & U64) // seat)
        total_weight += w
        x: int256 = judging._value(values, coordinate)
        if rule == RULE_BULYAN:
            chosen: uint256 = staticcall Records(msg.sender).bulyan_seats(key, index)  # the seats its selection chose, when not all
            if chosen != 0:
                seat = chosen
        seats += seat
        col.append(x * 2**64 + convert(seat, int256))
        # |x| < 2**31, w <= 2**20, at most 256 updates: |acc| < 2**59
        acc += convert(w, int256) * x
    # no averaged update may be missing
    assert averaged >> expected == 0, "challenges: an averaged update is missing"

    agg: int256 = 0
    if n > 0:
        if rule == RULE_FEDAVG or rule == RULE_KRUM or rule == RULE_MULTIKRUM:
            # Krum returns its one update, MultiKrum the FedAvg mean of its selection
            agg = self._floor_div(acc, convert(total_weight, int256))
        else:
            cut: uint256 = 0  # the trimmed mean's trim at each end, whole seats in basis points
            if rule == RULE_TRIMMED:
                cut = recipe.param1 * seats // (recipe.param2 * BPS) * BPS
                assert 2 * cut < seats, "challenges: nothing left to average"
            med: int256 = 0
            kept: int256 = 0  # the trimmed mean's weighted sum
            med, kept = self._seated_median(col, seats, cut)
            if rule == RULE_MEDIAN:
                agg = med
            elif rule == RULE_BULYAN:
                # the mean of the beta seats nearest the median; `seats` is Bulyan's theta, beta = theta - 2f
                beta: uint256 = seats - 2 * recipe.param1 * BPS
                agg = self._floor_div(self._closest_to_median_sum(col, med, beta), convert(beta, int256))
            else:
                agg = self._floor_div(kept, convert(seats - 2 * cut, int256))
    new: int256 = max(min(judging._value(parent_chunk, coordinate) + agg, QMAX), -QMAX)
    wrong: bool = malformed or new != judging._value(claimed_chunk, coordinate)

    return wrong


@internal
@pure
def _seated_median(col: DynArray[int256, MAX_UPDATES], seats: uint256, cut: uint256) -> (int256, int256):
    """
    @dev The median and the trimmed mean's weighted sum of `col` (value * 2**64 +
         its seats, `seats` in all), each value counted once per seat, as
         learning.aggregate.fedmedian and fedtrimmedavg count them: sorted, each
         value covers its seats' positions; the median is the floor mean of the
         values at positions (seats - 1) // 2 and seats // 2 (equal seats: the
         middle value or the middle pair's floor mean), the sum weighs each value
         by its positions in [cut, seats - cut).
    """
    lo: int256 = 0
    hi: int256 = 0
    kept: int256 = 0
    start: uint256 = 0  # the value's first position
    clamped: uint256 = cut  # the first position at or after it that is not trimmed
    s: DynArray[int256, MAX_UPDATES] = self._sorted(col)
    for p: int256 in s:
        v: int256 = p >> 64
        if start <= (seats - 1) // 2:
            lo = v
        if start <= seats // 2:
            hi = v
        start += convert(p - (v << 64), uint256)
        end: uint256 = min(max(start, cut), seats - cut)
        kept += v * convert(end - clamped, int256)
        clamped = end
    return (lo + hi) >> 1, kept


@internal
@pure
def _closest_to_median_sum(col: DynArray[int256, MAX_UPDATES], med: int256, beta: uint256) -> int256:
    """
    @dev Bulyan's per-coordinate step: the sum of the `beta` seats closest to
         the median `med`, each value weighing the seats taken of it (the last
         one in part), ties to the earlier value (reveal order), as numpy's
         stable argsort in learning.aggregate.bulyan orders them (`col` in
         reveal order, not sorted, each value * 2**64 + its seats).
    """
    n: uint256 = len(col)
    total: int256 = 0
    for a: uint256 in range(n, bound=MAX_UPDATES):
        va: int256 = col[a] >> 64
        da: int256 = abs(va - med)
        before: uint256 = 0  # the seats of the values closer (or as close and earlier)
        for b: uint256 in range(n, bound=MAX_UPDATES):
            db: int256 = abs((col[b] >> 64) - med)
            if db < da or (db == da and b < a):
                before += convert(col[b] - ((col[b] >> 64) << 64), uint256)
        if before < beta:
            total += va * convert(min(convert(col[a] - (va << 64), uint256), beta - before), int256)
    return total


@internal
@pure
def _sorted(a: DynArray[int256, MAX_UPDATES]) -> DynArray[int256, MAX_UPDATES]:
    """
    @dev Insertion sort, ascending: n**2 / 4 moves on average (n <= 256).
    """
    out: DynArray[int256, MAX_UPDATES] = a
    n: uint256 = len(out)
    for i: uint256 in range(1, n, bound=MAX_UPDATES):
        x: int256 = out[i]
        j: uint256 = i
        for _: uint256 in range(MAX_UPDATES):
            if j == 0 or out[j - 1] <= x:
                break
            out[j] = out[j - 1]
            j -= 1
        out[j] = x
    return out


@internal
@pure
def _floor_div(a: int256, b: int256) -> int256:
    """
    @dev Floor division for b > 0 (Vyper's signed `//` truncates to zero;
         numpy's, which the validators use, floors).
    """
    q: int256 = a // b
    if a % b != 0 and a < 0:
        q -= 1
    return q
