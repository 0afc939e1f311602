# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title challenges
@notice Optimistic fraud proofs for round results. During a round's
        challenge window anyone may prove that the result its validator
        quorum voted for is wrong by recomputing one chunk of the new model
        on chain; a proven-wrong result is reverted (fedchain.revert_round)
        and every validator who voted for it becomes slashable.
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
     The distances are not coordinate-wise: they are sums over every chunk,
     which the vote commits to as a Merkle sum tree. open_table opens its
     root and records the selection its sums imply (the value check reads
     it); a wrong sum is proven by bisection down the tree: one node that is
     not the sum of its children (challenge_distance_sum) or one leaf that is
     not its chunk's distances (challenge_distance_leaf). Each step is one
     transaction: the committed intermediate sums make the bisection
     non-interactive, provided the committee's tree is available (it travels
     in a blob named by the voted model's lineage; see docs/decisions.md,
     "Challenges").
     Money: a challenge posts `bond` tokens. If the recomputed chunk differs
     from the claimed one the round is reverted and the bond returned; the
     challenger then earns the reporter share of every wrong voter's slash.
     If it matches, the challenge failed and the bond is forfeited (kept
     here, owed to nobody).
     The task's recipe hash binds the aggregation rule: recipe_hash ==
     keccak256(abi_encode(rule, param1, param2, score, keccak256(recipe JSON))),
     so a median round cannot be "proven wrong" with the mean, and the model
     of a rule the contract cannot recompute (rule 0) cannot be challenged
     here at all (its scores and total score can: they do not depend on the
     rule).
"""

from ethereum.ercs import IERC20
import fedchain
import merkle
import commitments
import krum
import sumtree

CHUNK: constant(uint256) = 64          # values per chunk (leaf)
CHUNK_BYTES: constant(uint256) = 256   # 64 big-endian int32
MAX_UPDATES: constant(uint256) = 256   # the round's reveal limit
MAX_DEPTH: constant(uint256) = 20      # 2**20 chunks: 67M parameters
MAX_WEIGHT: constant(uint256) = 2**20  # FedAvg's cap on a sample count
QMAX: constant(int256) = 2**23         # fixed-point clip: |x| <= 128 at scale 2**16
RULE_FEDAVG: constant(uint256) = 1
RULE_MEDIAN: constant(uint256) = 2
RULE_TRIMMED: constant(uint256) = 3
RULE_KRUM: constant(uint256) = 4
RULE_MULTIKRUM: constant(uint256) = 5
RULE_BULYAN: constant(uint256) = 6
MAX_TABLE: constant(uint256) = sumtree.MAX_TABLE  # reveals a distance table may cover (Krum rules)
MAX_PAIRS: constant(uint256) = sumtree.MAX_PAIRS  # MAX_TABLE * (MAX_TABLE - 1) / 2
SCORE_COSINE: constant(uint256) = 1
PPM: constant(uint256) = 10**6
BPS: constant(uint256) = 10_000
MAX_CHUNKS: constant(uint256) = 256         # a score check reads whole vectors: up to 16,384 parameters
MAX_VECTOR_BYTES: constant(uint256) = 65536  # MAX_CHUNKS * CHUNK_BYTES
MAX_SCORES: constant(uint256) = 256         # leaves of a scores tree (one per reveal)

INDEX_MASK: constant(uint256) = 2**32 - 1
HIGH_BITS: constant(uint256) = max_value(uint256) - (2**32 - 1)  # sign extension of an int32
SAMPLES_MASK: constant(uint256) = 2**128 - 1
U64: constant(uint256) = 2**64 - 1


struct RecipeRule:
    rule: uint256        # 1 FedAvg, 2 FedMedian, 3 FedTrimmedAvg, 4 Krum, 5 MultiKrum, 6 Bulyan, 0 not recomputable here
    param1: uint256      # FedTrimmedAvg: beta = param1 / param2; Krum, MultiKrum, Bulyan: f = param1
    param2: uint256      # MultiKrum: m = param2 (0: n - f, at least 1)
    score: uint256       # 1 the cosine score, 0 not recomputable here
    json_hash: bytes32   # keccak256 of the recipe JSON


struct Distances:
    # A Krum-rule vote's scores_root is keccak256(scores_tree_root ++ table
    # root): the table is a Merkle *sum* tree over the model's chunks (see
    # sumtree.vy) whose every node carries, for each pair of reveal
    # indices i < j (at j * (j - 1) / 2 + i), the sum over its chunks of
    # |u_i[c] - u_j[c]|**2, 0 when either update was rejected. The root's
    # sums are the round's squared distances.
    scores_tree_root: bytes32
    left: bytes32        # the table root's children (both empty: the root is leaf 0)
    right: bytes32
    totals: DynArray[uint256, MAX_PAIRS]


struct SumNode:
    # one node of a distance table below the root: its children's hashes
    # (unused for a leaf) and its sums
    left: bytes32
    right: bytes32
    sums: DynArray[uint256, MAX_PAIRS]


struct Opening:
    # one accepted update's chunk, proven through the trainer's commitment
    node: address
    update_root: bytes32
    salt: bytes32
    data: Bytes[CHUNK_BYTES]                 # empty: the zero leaf past the model's last chunk
    proof: DynArray[bytes32, MAX_DEPTH]


struct Vote:
    model_root: bytes32
    model_cid: bytes32
    scores_root: bytes32
    total_score: uint256
    rejected: uint256


deployer: immutable(address)
bond: public(immutable(uint256))
selector: public(immutable(krum.__interface__))  # Krum's and Bulyan's selections, a contract of their own
fc: public(fedchain.__interface__)
# Bonds of failed challenges: held here for ever (this contract's whole token balance).
forfeited: public(uint256)
# open_table's record, keyed by keccak256(abi_encode(task, round, leading vote
# hash)): OPENED | MALFORMED (a table of the wrong size) | the selection
# (krum.krum_selection: a mask, and the update kept in part)
selections: HashMap[bytes32, uint256]
# Bulyan's record beside it: the seats chosen of a reveal index chosen in part (krum.bulyan_selection)
bulyan_seats: HashMap[bytes32, HashMap[uint256, uint256]]
OPENED: constant(uint256) = 2**255
MALFORMED: constant(uint256) = 2**254
SELECTION_MASK: constant(uint256) = 2**64 - 1  # MAX_TABLE reveal indices
PART_MASK: constant(uint256) = 2**128 - 1  # bits 64-191: the update kept in part (krum_selection)


event TableOpened:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    selection: uint256   # bit i: reveal i is averaged (0 with malformed)
    malformed: bool


event Challenged:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    challenger: indexed(address)
    kind: uint8      # 1 aggregate value, 2 one trainer's score, 3 the total score,
                     # 4 a distance table node's sums, 5 a distance table leaf
    at: uint256      # the value's position (chunk * 64 + j), the trainer's reveal
                     # index, the node's height * 2**32 + position, or the leaf's chunk
    success: bool


@deploy
def __init__(bond_: uint256, selector_: krum.__interface__):
    """
    @param bond_ Tokens a challenger posts; forfeited (kept here for ever) if
           the challenge fails.
    @param selector_ The krum contract (Krum's and Bulyan's selections).
    """
    deployer = msg.sender
    bond = bond_
    selector = selector_


@external
def bind(fedchain_: fedchain.__interface__):
    """
    @notice Name the fedchain contract this contract judges for (once, by
            the deployer: fedchain takes this contract's address at
            deployment, so one of the two must be told afterwards).
    """
    assert msg.sender == deployer, "challenges: not the deployer"
    assert self.fc.address == empty(address), "challenges: already bound"
    self.fc = fedchain_


@external
@nonreentrant
def challenge(
    task_id: uint256,
    round_id: uint256,
    vote: Vote,
    recipe: RecipeRule,
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
    @notice Challenge the leading result of a round in its window by
            recomputing value `coordinate` of chunk `chunk` of the new model.
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
    @return True if the result was wrong (round reverted), False if the
            challenge failed (bond forfeited).
    @dev Requirements: a challengeable rule, the task's current round, a leading
         vote equal to `vote`, within the challenge window (checked by
         fedchain.revert_round on success, here for failure), valid proofs
         and commitments, exactly the averaged updates in reveal order.
    """
    fc: fedchain.__interface__ = self.fc
    task: fedchain.Task = staticcall fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
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
        opened: uint256 = self.selections[key]
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
        self._check_commitment(fc, task_id, round_id, node, update_roots[i], salts[i])
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
        x: int256 = self._value(values, coordinate)
        if rule == RULE_BULYAN:
            chosen: uint256 = self.bulyan_seats[key][index]  # the seats its selection chose, when not all
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
    new: int256 = max(min(self._value(parent_chunk, coordinate) + agg, QMAX), -QMAX)
    wrong: bool = malformed or new != self._value(claimed_chunk, coordinate)

    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, kind=1,
                   at=chunk * CHUNK + coordinate, success=wrong)
    self._settle(task_id, round_id, wrong)
    return wrong


@external
def open_table(task_id: uint256, round_id: uint256, vote: Vote, recipe: RecipeRule,
               nodes: DynArray[address, MAX_TABLE], distances: Distances):
    """
    @notice First step against a Krum-rule vote (Krum, MultiKrum, Bulyan):
            open its distance table's root and record the selection the
            root's sums imply, for `challenge` to use. It judges nothing, so
            it takes no bond; anyone may call it in the window (again: the
            record is a function of the committed root, so it cannot change).
    @param nodes Every revealer of the round, in reveal order: Krum and
           MultiKrum count seats, which their reveal records hold.
    @param distances The vote's scores tree root and the table root's
           children hashes and sums (see Distances).
    @dev Krum's selection: each update's score is its summed squared
         distance to its n - f - 2 nearest others, the m lowest win; Bulyan's
         is Krum repeated n - 2f times on what is left. A separate
         transaction because the table (n(n-1)/2 words) would otherwise make
         every rule's `challenge` reserve the memory for it.
    """
    fc: fedchain.__interface__ = self.fc
    task: fedchain.Task = staticcall fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    rule: uint256 = recipe.rule
    assert rule >= RULE_KRUM and rule <= RULE_BULYAN, "challenges: no distance table"
    assert r.reveals <= MAX_TABLE, "challenges: table too large"
    key: bytes32 = keccak256(abi_encode(task_id, round_id, r.leader))
    table: bytes32 = empty(bytes32)
    if distances.left == empty(bytes32) and distances.right == empty(bytes32):
        table = sumtree._leaf(0, distances.totals)
    else:
        table = sumtree._node(distances.left, distances.right, distances.totals)
    assert keccak256(concat(distances.scores_tree_root, table)) == vote.scores_root, "challenges: not the vote's distance table"
    malformed: bool = len(distances.totals) != sumtree._pairs(r.reveals)
    assert len(nodes) == r.reveals, "challenges: ragged inputs"
    seats: DynArray[uint256, MAX_TABLE] = []
    for i: uint256 in range(len(nodes), bound=MAX_TABLE):
        rec: uint256 = staticcall fc.record(task_id, round_id, nodes[i])
        assert rec & INDEX_MASK == i + 1, "challenges: not that reveal"
        seats.append((rec >> 160) & U64)
    selection: uint256 = 0
    if not malformed:
        accepted: uint256 = 0
        if r.reveals > 0:
            accepted = (max_value(uint256) >> (256 - r.reveals)) & ~vote.rejected
        if rule == RULE_BULYAN:
            chosen: DynArray[uint256, MAX_TABLE] = staticcall selector.bulyan_selection(
                accepted, r.reveals, distances.totals, recipe.param1, seats)
            for i: uint256 in range(len(chosen), bound=MAX_TABLE):
                if chosen[i] > 0:
                    selection |= 1 << i
                    if chosen[i] != seats[i]:  # chosen in part (in whole: its record's seats)
                        self.bulyan_seats[key][i] = chosen[i]
        else:
            selection = staticcall selector.krum_selection(accepted, r.reveals, distances.totals, recipe.param1,
                                                           1 if rule == RULE_KRUM else recipe.param2, seats)
    self.selections[key] = OPENED | (MALFORMED if malformed else 0) | selection
    log TableOpened(task_id=task_id, round_id=round_id, selection=selection, malformed=malformed)


@external
@nonreentrant
def challenge_distance_sum(
    task_id: uint256,
    round_id: uint256,
    vote: Vote,
    recipe: RecipeRule,
    scores_tree_root: bytes32,
    height: uint256,
    position: uint256,
    sums: DynArray[uint256, MAX_PAIRS],
    left: SumNode,
    right: SumNode,
    siblings: DynArray[bytes32, MAX_DEPTH],
    digests: DynArray[bytes32, MAX_DEPTH],
) -> bool:
    """
    @notice One step of the bisection of a Krum vote's distance table: the
            node at `height` (leaves: 0) and `position` must hold the sums of
            its two children, entry by entry, each of the table's size.
    @param sums The node's sums; `left` and `right` its children (a child
           leaf's hash is sumtree._leaf of its chunk, 2 * position or + 1).
    @param siblings From the node up to the table root: each ancestor's
           other child; `digests` each ancestor's sums digest
           (keccak256(abi_encode(sums))).
    @dev A table whose root's sums are wrong has, by induction, either a node
         that is not the sum of its children (this step) or a wrong leaf
         (challenge_distance_leaf): walking down from the root along a child
         whose sums differ from the honest ones finds one of the two.
    """
    fc: fedchain.__interface__ = self.fc
    task: fedchain.Task = staticcall fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    assert recipe.rule >= RULE_KRUM and recipe.rule <= RULE_BULYAN, "challenges: no distance table"
    assert height >= 1 and height <= MAX_DEPTH, "challenges: bad node"
    hl: bytes32 = empty(bytes32)
    hr: bytes32 = empty(bytes32)
    if height == 1:
        hl = sumtree._leaf(2 * position, left.sums)
        hr = sumtree._leaf(2 * position + 1, right.sums)
    else:
        hl = sumtree._node(left.left, left.right, left.sums)
        hr = sumtree._node(right.left, right.right, right.sums)
    h: bytes32 = sumtree._node(hl, hr, sums)
    self._check_table_path(h, position, siblings, digests, scores_tree_root, vote.scores_root)
    size: uint256 = sumtree._pairs(r.reveals)
    wrong: bool = len(sums) != size or len(left.sums) != size or len(right.sums) != size
    if not wrong:
        for e: uint256 in range(size, bound=MAX_PAIRS):
            if sums[e] != left.sums[e] + right.sums[e]:
                wrong = True
                break
    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, kind=4,
                   at=height * 2**32 + position, success=wrong)
    self._settle(task_id, round_id, wrong)
    return wrong


@external
@nonreentrant
def challenge_distance_leaf(
    task_id: uint256,
    round_id: uint256,
    vote: Vote,
    recipe: RecipeRule,
    scores_tree_root: bytes32,
    chunk: uint256,
    sums: DynArray[uint256, MAX_PAIRS],
    siblings: DynArray[bytes32, MAX_DEPTH],
    digests: DynArray[bytes32, MAX_DEPTH],
    i: uint256,
    j: uint256,
    a: Opening,
    b: Opening,
) -> bool:
    """
    @notice The last step of the bisection of a Krum vote's distance table:
            entry (i, j) of leaf `chunk` must be |u_i[c] - u_j[c]|**2 over
            chunk c of the two updates (0 if either was rejected).
    @param sums The leaf's sums; `siblings` and `digests` its path to the
           table root (as in challenge_distance_sum).
    @param i Reveal indices, i < j; `a` and `b` chunk `chunk` of their
         updates with Merkle proofs and commitment openings (unused when
         either update was rejected). A table deeper or shallower than the
         updates' trees is wrong.
    """
    fc: fedchain.__interface__ = self.fc
    task: fedchain.Task = staticcall fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    assert recipe.rule >= RULE_KRUM and recipe.rule <= RULE_BULYAN, "challenges: no distance table"
    assert i < j and j < r.reveals, "challenges: no such pair"
    self._check_table_path(sumtree._leaf(chunk, sums), chunk, siblings, digests, scores_tree_root, vote.scores_root)
    wrong: bool = len(sums) != sumtree._pairs(r.reveals)
    if not wrong:
        want: uint256 = 0
        if (vote.rejected >> i) & 1 == 0 and (vote.rejected >> j) & 1 == 0:
            assert len(a.proof) == len(b.proof), "challenges: ragged inputs"
            self._check_opening(task_id, round_id, a, i, chunk)
            self._check_opening(task_id, round_id, b, j, chunk)
            if len(siblings) != len(a.proof):
                wrong = True  # the table does not have the model's shape
            elif len(a.data) > 0 and len(b.data) > 0:
                for k: uint256 in range(CHUNK):
                    d: int256 = self._value(a.data, k) - self._value(b.data, k)
                    want += convert(d * d, uint256)
            elif len(a.data) != len(b.data):
                raise "challenges: bad chunk length"
        wrong = wrong or sums[j * (j - 1) // 2 + i] != want
    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, kind=5, at=chunk, success=wrong)
    self._settle(task_id, round_id, wrong)
    return wrong


@external
@nonreentrant
def challenge_score(
    task_id: uint256,
    round_id: uint256,
    vote: Vote,
    recipe: RecipeRule,
    index: uint256,
    node: address,
    score: uint256,
    score_proof: DynArray[bytes32, merkle.MAX_DEPTH],
    update_root: bytes32,
    salt: bytes32,
    update: Bytes[MAX_VECTOR_BYTES],
    parent: Bytes[MAX_VECTOR_BYTES],
    claimed: Bytes[MAX_VECTOR_BYTES],
) -> bool:
    """
    @notice Challenge one trainer's score in the leading vote: the contract
            recomputes the cosine score from the whole update, parent model
            and voted model (the score is not coordinate-wise, but it depends
            on this one update only):
            floor(10**6 * <u, g> / sqrt(|u|**2 |g|**2)), 0 if <u, g> <= 0,
            g = voted model - parent; and 0 for a rejected update; then
            times the trainer's seats in basis points, divided by 10,000.
    @param index A reveal index; `node` and `score` the vote's scores-tree
           leaf there (the voted model's lineage lists them), with its Merkle
           proof. A leaf that names anyone but the index-th revealer is wrong.
    @param update The trainer's whole update, parent and claimed the two
           models, each as packed big-endian int32 chunks of 64 values (the
           last zero-padded); empty for a rejected update.
    @dev Requirements: the cosine score, the task's current round, the
         leading vote, the window, a valid score leaf at the trainer's reveal
         index, and vectors whose Merkle roots are the revealed update root
         (proven through the commitment) and the two model roots.
    """
    fc: fedchain.__interface__ = self.fc
    task: fedchain.Task = staticcall fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    assert recipe.score == SCORE_COSINE, "challenges: score not challengeable"
    assert index < r.reveals, "challenges: no such reveal"
    assert merkle._verify(commitments._score_leaf(node, score), index, score_proof, vote.scores_root), "challenges: bad score proof"
    rec: uint256 = staticcall fc.record(task_id, round_id, node)

    expected: uint256 = 0
    misnamed: bool = rec & INDEX_MASK != index + 1
    if not misnamed and (vote.rejected >> index) & 1 == 0:
        self._check_commitment(fc, task_id, round_id, node, update_root, salt)
        size: uint256 = len(update)
        assert size > 0 and size % CHUNK_BYTES == 0 and len(parent) == size and len(claimed) == size, "challenges: bad vector length"
        assert self._vector_root(update) == update_root, "challenges: bad update"
        assert self._vector_root(parent) == task.model_root, "challenges: bad parent"
        assert self._vector_root(claimed) == vote.model_root, "challenges: bad claimed model"
        # Two's complement arithmetic mod 2**256 (unchecked uint256 ops on
        # sign-extended values) gives exact results: |u| <= 2**23 and
        # |g| <= 2**24 per value and at most 2**14 values keep every true sum
        # below 2**62 in magnitude; dot**2 * 10**12 stays below 2**164.
        dot_w: uint256 = 0
        uu_w: uint256 = 0
        gg_w: uint256 = 0
        for k: uint256 in range(size // 32, bound=MAX_VECTOR_BYTES // 32):
            wu: uint256 = convert(extract32(update, k * 32), uint256)
            wp: uint256 = convert(extract32(parent, k * 32), uint256)
            wc: uint256 = convert(extract32(claimed, k * 32), uint256)
            for m: uint256 in range(8):
                # sign-extend each int32 inline (an internal call per value would double the cost)
                sh: uint256 = unsafe_sub(224, unsafe_mul(32, m))
                xu: uint256 = (wu >> sh) & INDEX_MASK
                xc: uint256 = (wc >> sh) & INDEX_MASK
                xp: uint256 = (wp >> sh) & INDEX_MASK
                u: uint256 = xu | unsafe_mul(xu >> 31, HIGH_BITS)
                g: uint256 = unsafe_sub(xc | unsafe_mul(xc >> 31, HIGH_BITS), xp | unsafe_mul(xp >> 31, HIGH_BITS))
                dot_w = unsafe_add(dot_w, unsafe_mul(u, g))
                uu_w = unsafe_add(uu_w, unsafe_mul(u, u))
                gg_w = unsafe_add(gg_w, unsafe_mul(g, g))
        dot: int256 = convert(convert(dot_w, bytes32), int256)
        if dot > 0:
            d: uint256 = convert(dot, uint256)
            # times the seats its stake stands for (fedchain.vy, `reveal`)
            expected = min(PPM, isqrt(PPM * PPM * d * d // (uu_w * gg_w))) * ((rec >> 160) & U64) // BPS
    wrong: bool = misnamed or expected != score
    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, kind=2, at=index, success=wrong)
    self._settle(task_id, round_id, wrong)
    return wrong


@external
@nonreentrant
def challenge_total(
    task_id: uint256,
    round_id: uint256,
    vote: Vote,
    recipe: RecipeRule,
    nodes: DynArray[address, MAX_SCORES],
    scores: DynArray[uint256, MAX_SCORES],
    table_root: bytes32,
) -> bool:
    """
    @notice Challenge the leading vote's scores tree as a whole: it must have
            one leaf per reveal of the round, and its leaves must sum to
            `total_score`, which divides every trainer's reward. Any rule may
            be challenged here, rule 0 (not recomputable) included.
    @param nodes Every leaf of the vote's scores tree, in order (the
           trainer of each); `scores` their scores.
    @param table_root A Krum-rule vote's distance table root (see Distances):
           its scores root is keccak256(scores tree root ++ table root).
           Required (non-empty) for the Krum rules (4, 5, 6) and empty for
           every other rule, so the leaves that hash to the vote's scores
           root are unique (a plain tree's root is also keccak256 of its two
           halves' roots: a free table root would let a subset of the leaves
           pass for the whole tree).
    @dev Effects: the vote is wrong if there are not as many leaves as the
         round has reveals (a revealer left out, or a phantom leaf added) or
         they do not sum to `total_score`; then the round is reverted and the
         bond returned, else the bond goes to the task's pool (see _settle).
         Requirements: the task's rule (`recipe`), the task's current round,
         the leading vote, the window, at least one leaf, as many scores as
         nodes, a table root exactly when the rule is a Krum rule, and leaves
         whose Merkle root (with the table root, for the Krum rules) is the
         vote's scores root.
    @return True if the vote was wrong (round reverted), False if the
            challenge failed (bond forfeited).
    """
    fc: fedchain.__interface__ = self.fc
    task: fedchain.Task = staticcall fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    if recipe.rule >= RULE_KRUM and recipe.rule <= RULE_BULYAN:
        assert table_root != empty(bytes32), "challenges: Krum rules need the table root"
    else:
        assert table_root == empty(bytes32), "challenges: table root only for Krum rules"
    n: uint256 = len(nodes)
    assert n > 0 and len(scores) == n, "challenges: ragged inputs"
    layer: DynArray[bytes32, MAX_SCORES] = []
    total: uint256 = 0
    for i: uint256 in range(n, bound=MAX_SCORES):
        layer.append(commitments._score_leaf(nodes[i], scores[i]))
        total += scores[i]
    root: bytes32 = self._root_of(layer)
    if table_root != empty(bytes32):
        root = keccak256(concat(root, table_root))
    assert root == vote.scores_root, "challenges: not the scores tree"
    wrong: bool = n != r.reveals or total != vote.total_score
    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, kind=3, at=0, success=wrong)
    self._settle(task_id, round_id, wrong)
    return wrong


@internal
@view
def _under_challenge(task: fedchain.Task, task_id: uint256, round_id: uint256, vote: Vote, recipe: RecipeRule) -> fedchain.Round:
    """
    @dev What every challenge needs: the recipe rule is the task's, the round
         is the task's current one, `vote` is its leading vote and the
         window is open. Returns the round.
    """
    assert keccak256(abi_encode(recipe.rule, recipe.param1, recipe.param2, recipe.score, recipe.json_hash)) == task.recipe_hash, "challenges: not the task's rule"
    assert round_id == task.round and not task.finished, "challenges: not the current round"
    r: fedchain.Round = staticcall self.fc.rounds(task_id, round_id)
    assert r.leader != empty(bytes32), "challenges: no quorum"
    assert commitments._vote_hash(vote.model_root, vote.model_cid, vote.scores_root, vote.total_score, vote.rejected) == r.leader, "challenges: not the leading vote"
    assert block.number <= ((r.schedule >> 192) & U64) + task.challenge_blocks, "challenges: window closed"
    return r


@internal
def _settle(task_id: uint256, round_id: uint256, wrong: bool):
    """
    @dev The bond is posted either way (a challenge cannot be tried for
         free); a successful challenge reverts the round and returns it, a
         failed one's is forfeited: it stays here, owed to nobody
         (`forfeited`), since a task's pool would hand it to the sponsor, who
         could profit from provoking failed challenges (SECURITY-REVIEW M-5).
    """
    fc: fedchain.__interface__ = self.fc
    token: IERC20 = staticcall fc.token()
    assert extcall token.transferFrom(msg.sender, self, bond), "challenges: bond transfer failed"
    if wrong:
        extcall fc.revert_round(task_id, round_id, msg.sender)
        assert extcall token.transfer(msg.sender, bond), "challenges: bond refund failed"
    else:
        self.forfeited += bond


@internal
@pure
def _check_table_path(node: bytes32, position: uint256, siblings: DynArray[bytes32, MAX_DEPTH],
                      digests: DynArray[bytes32, MAX_DEPTH], scores_tree_root: bytes32, scores_root: bytes32):
    """
    @dev `node` sits at `position` of a distance table that the vote's
         scores root commits to.
    """
    assert len(digests) == len(siblings), "challenges: ragged inputs"
    table: bytes32 = sumtree._root_through(node, position, siblings, digests)
    assert table != empty(bytes32) and keccak256(concat(scores_tree_root, table)) == scores_root, "challenges: not the vote's distance table"


@internal
@view
def _check_commitment(fc: fedchain.__interface__, task_id: uint256, round_id: uint256, node: address,
                      update_root: bytes32, salt: bytes32):
    """
    @dev The node's commitment opens to (update_root, salt): commitments._commitment
         as fedchain computes it (bound to fedchain's address).
    """
    c: bytes32 = keccak256(abi_encode(commitments.COMMIT_DOMAIN, chain.id, fc.address, task_id, round_id, node, update_root, salt))
    assert staticcall fc.commitment(task_id, round_id, node) == c, "challenges: root does not match commitment"


@internal
@view
def _check_opening(task_id: uint256, round_id: uint256, o: Opening, index: uint256, chunk: uint256):
    """
    @dev `o` is chunk `chunk` of the update revealed at `index`: its root is
         the committed one and its data (empty: a zero padding leaf) is
         under that root.
    """
    fc: fedchain.__interface__ = self.fc
    assert (staticcall fc.record(task_id, round_id, o.node)) & INDEX_MASK == index + 1, "challenges: not that reveal"
    self._check_commitment(fc, task_id, round_id, o.node, o.update_root, o.salt)
    assert len(o.data) == 0 or len(o.data) == CHUNK_BYTES, "challenges: bad chunk length"
    leaf: bytes32 = empty(bytes32)
    if len(o.data) > 0:
        leaf = keccak256(o.data)
    assert merkle._verify(leaf, chunk, o.proof, o.update_root), "challenges: bad update proof"


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
def _vector_root(data: Bytes[MAX_VECTOR_BYTES]) -> bytes32:
    """
    @dev Merkle root over the keccak256 of each 256-byte chunk (the Python
         twin is fixedpoint.vector_root).
    """
    layer: DynArray[bytes32, MAX_SCORES] = []
    for c: uint256 in range(len(data) // CHUNK_BYTES, bound=MAX_CHUNKS):
        layer.append(keccak256(slice(data, c * CHUNK_BYTES, CHUNK_BYTES)))
    return self._root_of(layer)


@internal
@pure
def _root_of(leaves: DynArray[bytes32, MAX_SCORES]) -> bytes32:
    """
    @dev Merkle root of 1 to 256 leaves, padded with zero hashes to a power
         of two (storage.merkle's rule), computed in place.
    """
    layer: DynArray[bytes32, MAX_SCORES] = leaves
    width: uint256 = 1
    for _: uint256 in range(9):  # 256 = 2**8 leaves at most
        if width >= len(layer):
            break
        width *= 2
    for _: uint256 in range(MAX_SCORES):
        if len(layer) >= width:
            break
        layer.append(empty(bytes32))
    for _: uint256 in range(9):
        if width <= 1:
            break
        width //= 2
        for i: uint256 in range(width, bound=MAX_SCORES):
            layer[i] = keccak256(concat(layer[2 * i], layer[2 * i + 1]))
    return layer[0]


@internal
@pure
def _value(data: Bytes[CHUNK_BYTES], j: uint256) -> int256:
    """
    @dev Value j of a chunk: 4-byte big-endian two's complement.
    """
    word: uint256 = convert(extract32(data, (j // 8) * 32), uint256)
    v: uint256 = (word >> (224 - 32 * (j % 8))) & INDEX_MASK
    if v >= 2**31:
        return convert(v, int256) - 2**32
    return convert(v, int256)


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
