namespace ModelCompiler.Runtime.Paged;

/// <summary>
/// One sequence's view of a <see cref="KvBlockPool"/>: its block table (entry i holds tokens i·B .. i·B + B − 1,
/// B the block size) and how many tokens are cached. Appending first <see cref="Reserve"/>s room (allocating blocks,
/// and copying a shared block before it is written: copy on write), the model's paged attention writes the new
/// tokens in place, then <see cref="Advance"/> counts them. <see cref="Fork"/> shares every block (parallel samples
/// of one prompt); <see cref="EvictBefore"/> frees blocks that left a sliding window; <see cref="Dispose"/> frees all.
/// </summary>
public sealed class KvSequence : IDisposable
{
    private readonly int[] _table;

    internal KvSequence(KvBlockPool pool, int maxBlocks)
    {
        Pool = pool;
        _table = new int[maxBlocks];
        Array.Fill(_table, -1);
    }

    public KvBlockPool Pool { get; }

    /// <summary>Tokens cached so far (the next token's position).</summary>
    public int Length { get; private set; }

    /// <summary>The most tokens this sequence can hold.</summary>
    public int MaxTokens => _table.Length * Pool.BlockSize;

    /// <summary>Block table entries in use (evicted entries count too: they are −1).</summary>
    public int BlockCount { get; private set; }

    /// <summary>Blocks this sequence owns now (evicted ones excluded).</summary>
    public int BlocksHeld { get; private set; }

    public bool IsDisposed { get; private set; }

    /// <summary>The block table: block ids, −1 for an evicted block.</summary>
    public ReadOnlySpan<int> Table => _table.AsSpan(0, BlockCount);

    /// <summary>The pool slot of the token at <paramref name="position"/>: block · blockSize + offset.</summary>
    public int Slot(int position)
    {
        int block = _table[position / Pool.BlockSize];
        return block * Pool.BlockSize + position % Pool.BlockSize;
    }

    /// <summary>
    /// Makes room for <paramref name="tokens"/> more tokens: allocates the blocks they need, and gives this sequence its
    /// own copy of a shared block that they would write into. Throws <see cref="McException"/> when the sequence's
    /// maximum or the pool's capacity would be exceeded.
    /// </summary>
    public void Reserve(int tokens)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (tokens < 0 || Length + (long)tokens > MaxTokens)
            throw new McException($"a sequence of {Length} tokens cannot take {tokens} more (at most {MaxTokens})");
        if (tokens == 0) return;
        int bs = Pool.BlockSize;
        int firstBlock = Length / bs, lastBlock = (Length + tokens - 1) / bs;
        if (firstBlock < BlockCount && _table[firstBlock] >= 0 && Pool.Owners(_table[firstBlock]) > 1)
        {
            // Copy on write: the first write into a block another sequence shares.
            int copy = Pool.Allocate();
            Pool.CopyBlock(_table[firstBlock], copy);
            Pool.Release(_table[firstBlock]);
            _table[firstBlock] = copy;
        }
        for (int b = BlockCount; b <= lastBlock; b++)
        {
            _table[b] = Pool.Allocate();
            BlocksHeld++;
        }
        BlockCount = Math.Max(BlockCount, lastBlock + 1);
    }

    /// <summary>Counts <paramref name="tokens"/> written (after the forward that wrote them).</summary>
    public void Advance(int tokens)
    {
        if (tokens < 0 || (long)Length + tokens > (long)BlockCount * Pool.BlockSize)
            throw new InvalidOperationException($"advance by {tokens} past the reserved {BlockCount} blocks");
        Length += tokens;
    }

    /// <summary>A new sequence sharing every block of this one (each shared block's owners + 1).</summary>
    public KvSequence Fork()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var fork = new KvSequence(Pool, _table.Length);
        for (int b = 0; b < BlockCount; b++)
            if ((fork._table[b] = _table[b]) >= 0) { Pool.Retain(_table[b]); fork.BlocksHeld++; }
        fork.BlockCount = BlockCount;
        fork.Length = Length;
        return fork;
    }

    /// <summary>
    /// Frees the blocks that hold only positions in [<paramref name="keepFirst"/>, <paramref name="position"/>): tokens
    /// no later query can see (a sliding window, or the gap between StreamingLLM's sinks and its recent window).
    /// </summary>
    public void EvictBefore(int position, int keepFirst = 0)
    {
        int bs = Pool.BlockSize;
        int from = (keepFirst + bs - 1) / bs, to = Math.Min(position / bs, BlockCount);
        for (int b = from; b < to; b++)
            if (_table[b] >= 0) { Pool.Release(_table[b]); _table[b] = -1; BlocksHeld--; }
    }

    public void Dispose()
    {
        if (IsDisposed) return;
        for (int b = 0; b < BlockCount; b++)
            if (_table[b] >= 0) { Pool.Release(_table[b]); _table[b] = -1; }
        BlocksHeld = 0;
        IsDisposed = true;
    }
}
