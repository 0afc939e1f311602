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
       FedMedian:     the median (even count: floor of the middle pair's mean);
       FedTrimmedAvg: the floor mean without the k = floor(beta n) largest and
                      k smallest values;
     and 0 if no update was accepted. The challenger sends chunk c of the
     parent model, of every accepted update and of the claimed model, each
     with a Merkle proof against the root on chain (update roots are proven
     through their commitments), so the contract trusts nothing it is sent;
     it recomputes the one value the challenger says is wrong.
     Money: a challenge posts `bond` tokens. If the recomputed chunk differs
     from the claimed one the round is reverted and the bond returned; the
     challenger then earns the reporter share of every wrong voter's slash.
     If it matches, the challenge failed and the bond goes to the task's pool.
     The task's recipe hash binds the aggregation rule: recipe_hash ==
     keccak256(abi_encode(rule, beta_num, beta_den, keccak256(recipe JSON))),
     so a median round cannot be "proven wrong" with the mean, and rules the
     contract cannot recompute (rule 0) cannot be challenged here at all.
"""

from ethereum.ercs import IERC20
import fedchain
import merkle
import commitments

CHUNK: constant(uint256) = 64          # values per chunk (leaf)
CHUNK_BYTES: constant(uint256) = 256   # 64 big-endian int32
MAX_UPDATES: constant(uint256) = 256   # the round's reveal limit
MAX_DEPTH: constant(uint256) = 20      # 2**20 chunks: 67M parameters
MAX_WEIGHT: constant(uint256) = 2**20  # FedAvg's cap on a sample count
QMAX: constant(int256) = 2**23         # fixed-point clip: |x| <= 128 at scale 2**16
RULE_FEDAVG: constant(uint256) = 1
RULE_MEDIAN: constant(uint256) = 2
RULE_TRIMMED: constant(uint256) = 3
SCORE_COSINE: constant(uint256) = 1
PPM: constant(uint256) = 10**6
MAX_CHUNKS: constant(uint256) = 256         # a score check reads whole vectors: up to 16,384 parameters
MAX_VECTOR_BYTES: constant(uint256) = 65536  # MAX_CHUNKS * CHUNK_BYTES
MAX_SCORES: constant(uint256) = 256         # leaves of a scores tree (one per reveal)

INDEX_MASK: constant(uint256) = 2**32 - 1
HIGH_BITS: constant(uint256) = max_value(uint256) - (2**32 - 1)  # sign extension of an int32
SAMPLES_MASK: constant(uint256) = 2**128 - 1
U64: constant(uint256) = 2**64 - 1


struct RecipeRule:
    rule: uint256        # 1 FedAvg, 2 FedMedian, 3 FedTrimmedAvg, 0 not recomputable here
    beta_num: uint256    # FedTrimmedAvg's beta = beta_num / beta_den
    beta_den: uint256
    score: uint256       # 1 the cosine score, 0 not recomputable here
    json_hash: bytes32   # keccak256 of the recipe JSON


struct Vote:
    model_root: bytes32
    model_cid: bytes32
    scores_root: bytes32
    total_score: uint256
    rejected: uint256


deployer: immutable(address)
bond: public(immutable(uint256))
fc: public(fedchain.__interface__)


event Challenged:
    task_id: indexed(uint256)
    round_id: indexed(uint256)
    challenger: indexed(address)
    kind: uint8      # 1 aggregate value, 2 one trainer's score, 3 the total score
    at: uint256      # the value's position (chunk * 64 + j), or the trainer's reveal index
    success: bool


@deploy
def __init__(bond_: uint256):
    """
    @param bond_ Tokens a challenger posts; forfeited to the task's pool if
           the challenge fails.
    """
    deployer = msg.sender
    bond = bond_


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
           2 FedMedian, 3 FedTrimmedAvg; `beta_num / beta_den` the trimmed
           share), its score kind and keccak256 of the recipe JSON.
    @param nodes The accepted trainers, in reveal order; `update_roots` and
           `salts` their revealed roots and salts (proven by commitment).
    @param update_chunks Chunk `chunk` of each accepted update, concatenated
           (256 bytes each); `update_proofs` their Merkle proofs, `depth`
           siblings each, concatenated.
    @param parent_chunk Chunk `chunk` of the task's current model.
    @param claimed_chunk Chunk `chunk` of the voted model.
    @return True if the result was wrong (round reverted), False if the
            challenge failed (bond forfeited).
    @dev Requirements: a challengeable rule, the task's current round, a leading
         vote equal to `vote`, within the challenge window (checked by
         fedchain.revert_round on success, here for failure), valid proofs
         and commitments, exactly the accepted reveals in reveal order.
    """
    fc: fedchain.__interface__ = self.fc
    task: fedchain.Task = staticcall fc.tasks(task_id)
    r: fedchain.Round = self._under_challenge(task, task_id, round_id, vote, recipe)
    rule: uint256 = recipe.rule
    assert rule >= RULE_FEDAVG and rule <= RULE_TRIMMED, "challenges: rule not challengeable"
    assert depth <= MAX_DEPTH and chunk < 2**depth and coordinate < CHUNK, "challenges: bad chunk index"
    n: uint256 = len(nodes)
    assert len(update_roots) == n and len(salts) == n, "challenges: ragged inputs"
    assert len(update_chunks) == n * CHUNK_BYTES and len(update_proofs) == n * depth, "challenges: ragged inputs"
    assert len(parent_proof) == depth and len(claimed_proof) == depth, "challenges: ragged inputs"
    assert len(parent_chunk) == CHUNK_BYTES and len(claimed_chunk) == CHUNK_BYTES, "challenges: bad chunk length"

    assert merkle._verify(keccak256(parent_chunk), chunk, parent_proof, task.model_root), "challenges: bad parent proof"
    assert merkle._verify(keccak256(claimed_chunk), chunk, claimed_proof, vote.model_root), "challenges: bad claimed proof"

    # The accepted set: every reveal index not in the rejected set, in order.
    col: DynArray[int256, MAX_UPDATES] = []  # the accepted updates' values at the coordinate
    acc: int256 = 0  # FedAvg's weighted sum
    total_weight: uint256 = 0
    expected: uint256 = 0  # next reveal index that must come
    for i: uint256 in range(n, bound=MAX_UPDATES):
        node: address = nodes[i]
        rec: uint256 = staticcall fc.record(task_id, round_id, node)
        assert rec & INDEX_MASK != 0, "challenges: not revealed"
        index: uint256 = (rec & INDEX_MASK) - 1
        for _: uint256 in range(MAX_UPDATES):
            if expected >= r.reveals or (vote.rejected >> expected) & 1 == 0:
                break
            expected += 1
        assert index == expected, "challenges: not the accepted updates in reveal order"
        expected += 1
        # commitments._commitment as fedchain computes it (bound to fedchain's address)
        c: bytes32 = keccak256(abi_encode(commitments.COMMIT_DOMAIN, chain.id, fc.address, task_id, round_id, node, update_roots[i], salts[i]))
        assert staticcall fc.commitment(task_id, round_id, node) == c, "challenges: root does not match commitment"
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
        w: uint256 = min((rec >> 32) & SAMPLES_MASK, MAX_WEIGHT)
        total_weight += w
        x: int256 = self._value(values, coordinate)
        col.append(x)
        # |x| < 2**31, w <= 2**20, at most 256 updates: |acc| < 2**59
        acc += convert(w, int256) * x
    # every remaining reveal must be rejected
    for _: uint256 in range(MAX_UPDATES):
        if expected >= r.reveals:
            break
        assert (vote.rejected >> expected) & 1 == 1, "challenges: an accepted update is missing"
        expected += 1

    agg: int256 = 0
    if n > 0:
        if rule == RULE_FEDAVG:
            agg = self._floor_div(acc, convert(total_weight, int256))
        else:
            col = self._sorted(col)
            if rule == RULE_MEDIAN:
                if n % 2 == 1:
                    agg = col[n // 2]
                else:
                    agg = self._floor_div(col[n // 2 - 1] + col[n // 2], 2)
            else:
                k: uint256 = recipe.beta_num * n // recipe.beta_den
                assert 2 * k < n, "challenges: nothing left to average"
                total: int256 = 0
                for i: uint256 in range(k, n - k, bound=MAX_UPDATES):
                    total += col[i]
                agg = self._floor_div(total, convert(n - 2 * k, int256))
    new: int256 = max(min(self._value(parent_chunk, coordinate) + agg, QMAX), -QMAX)
    wrong: bool = new != self._value(claimed_chunk, coordinate)

    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, kind=1,
                   at=chunk * CHUNK + coordinate, success=wrong)
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
            g = voted model - parent; and 0 for a rejected update.
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
        c: bytes32 = keccak256(abi_encode(commitments.COMMIT_DOMAIN, chain.id, fc.address, task_id, round_id, node, update_root, salt))
        assert staticcall fc.commitment(task_id, round_id, node) == c, "challenges: root does not match commitment"
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
            expected = min(PPM, isqrt(PPM * PPM * d * d // (uu_w * gg_w)))
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
) -> bool:
    """
    @notice Challenge the leading vote's total score: the leaves of its
            scores tree (every one, in order) must sum to `total_score`,
            which divides every trainer's reward.
    @dev Requirements: the task's current round, the leading vote, the
         window, and leaves whose Merkle root is the vote's scores root.
    """
    fc: fedchain.__interface__ = self.fc
    task: fedchain.Task = staticcall fc.tasks(task_id)
    self._under_challenge(task, task_id, round_id, vote, recipe)
    n: uint256 = len(nodes)
    assert n > 0 and len(scores) == n, "challenges: ragged inputs"
    layer: DynArray[bytes32, MAX_SCORES] = []
    total: uint256 = 0
    for i: uint256 in range(n, bound=MAX_SCORES):
        layer.append(commitments._score_leaf(nodes[i], scores[i]))
        total += scores[i]
    assert self._root_of(layer) == vote.scores_root, "challenges: not the scores tree"
    wrong: bool = total != vote.total_score
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
    assert keccak256(abi_encode(recipe.rule, recipe.beta_num, recipe.beta_den, recipe.score, recipe.json_hash)) == task.recipe_hash, "challenges: not the task's rule"
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
         failed one's goes to the task's pool (fedchain pulls it from here).
    """
    fc: fedchain.__interface__ = self.fc
    token: IERC20 = staticcall fc.token()
    assert extcall token.transferFrom(msg.sender, self, bond), "challenges: bond transfer failed"
    if wrong:
        extcall fc.revert_round(task_id, round_id, msg.sender)
        assert extcall token.transfer(msg.sender, bond), "challenges: bond refund failed"
    else:
        assert extcall token.approve(fc.address, bond), "challenges: approve failed"
        extcall fc.fund_pool(task_id, bond)


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
