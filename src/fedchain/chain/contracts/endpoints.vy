# pragma version 0.4.3
# pragma nonreentrancy off
"""
@title endpoints
@notice Where each participant serves its blobs: an address announces the URL of
        its blob server (`GET <url>/ipfs/<cid>`), and anyone reads it back, by
        address (`endpoint`) or from the `Announced` events. This is how nodes on
        different machines find each other's blobs without a shared file.
@dev One concern, no owner, no link to the other contracts: an address can only
     set its own endpoint, and readers decide whose endpoints matter (nodes use
     those of stakers, task sponsors and the authors of the blobs they fetch, and
     check every byte against its CID, so an endpoint is a hint, never trusted).
     Only http:// and https:// URLs are accepted. The revert prefix is
     "endpoints:". Reentrancy: no external calls.
"""

MAX_URL: constant(uint256) = 256

endpoint: public(HashMap[address, String[MAX_URL]])


event Announced:
    node: indexed(address)
    url: String[MAX_URL]


@external
def announce(url: String[MAX_URL]):
    """
    @notice Set the caller's blob server URL, replacing any earlier one.
    @dev Effects: `endpoint[msg.sender]` is `url`; emits `Announced`.
         Requirements: `url` is 1 to 256 bytes (a longer one fails ABI
         decoding) and starts with "http://" or "https://" followed by at
         least one byte.
    @param url The base URL, e.g. "http://10.0.0.5:8701".
    """
    assert len(url) > 0, "endpoints: empty URL"
    assert self._is_web_url(url), "endpoints: not an http:// or https:// URL"
    self.endpoint[msg.sender] = url
    log Announced(node=msg.sender, url=url)


@internal
@pure
def _is_web_url(url: String[MAX_URL]) -> bool:
    if len(url) > 7 and slice(url, 0, 7) == "http://":
        return True
    return len(url) > 8 and slice(url, 0, 8) == "https://"
