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

INDEX_MASK: constant(uint256) = 2**32 - 1
SAMPLES_MASK: constant(uint256) = 2**128 - 1
U64: constant(uint256) = 2**64 - 1


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
    chunk: uint256
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
    rule: uint256,
    beta_num: uint256,
    beta_den: uint256,
    recipe_json_hash: bytes32,
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
    @param rule The task's rule (1 FedAvg, 2 FedMedian, 3 FedTrimmedAvg) and
           `beta_num / beta_den` its trimmed share, with `recipe_json_hash`
           (keccak256 of the recipe JSON) the preimage of the recipe hash.
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
    assert keccak256(abi_encode(rule, beta_num, beta_den, recipe_json_hash)) == task.recipe_hash, "challenges: not the task's rule"
    assert rule >= RULE_FEDAVG and rule <= RULE_TRIMMED, "challenges: rule not challengeable"
    assert round_id == task.round and not task.finished, "challenges: not the current round"
    r: fedchain.Round = staticcall fc.rounds(task_id, round_id)
    assert r.leader != empty(bytes32), "challenges: no quorum"
    assert commitments._vote_hash(vote.model_root, vote.model_cid, vote.scores_root, vote.total_score, vote.rejected) == r.leader, "challenges: not the leading vote"
    assert block.number <= ((r.schedule >> 192) & U64) + task.challenge_blocks, "challenges: window closed"
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
                k: uint256 = beta_num * n // beta_den
                assert 2 * k < n, "challenges: nothing left to average"
                total: int256 = 0
                for i: uint256 in range(k, n - k, bound=MAX_UPDATES):
                    total += col[i]
                agg = self._floor_div(total, convert(n - 2 * k, int256))
    new: int256 = max(min(self._value(parent_chunk, coordinate) + agg, QMAX), -QMAX)
    wrong: bool = new != self._value(claimed_chunk, coordinate)

    log Challenged(task_id=task_id, round_id=round_id, challenger=msg.sender, chunk=chunk, success=wrong)
    token: IERC20 = staticcall fc.token()
    # The bond is posted either way (a challenge cannot be tried for free)...
    assert extcall token.transferFrom(msg.sender, self, bond), "challenges: bond transfer failed"
    if wrong:
        extcall fc.revert_round(task_id, round_id, msg.sender)
        assert extcall token.transfer(msg.sender, bond), "challenges: bond refund failed"
    else:
        # ...and a failed one's goes to the task's pool (fedchain pulls it).
        assert extcall token.approve(fc.address, bond), "challenges: approve failed"
        extcall fc.fund_pool(task_id, bond)
    return wrong


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
