namespace ModelCompiler.Runtime.Paged;

/// <summary>The shape of one layer's cached keys and values: per token, kvHeads × headDim keys and kvHeads × valueDim values.</summary>
public readonly record struct PagedLayer(int KvHeads, int HeadDim, int ValueDim);

/// <summary>
/// The paged KV cache's memory: one pool of fixed-size blocks (<see cref="BlockSize"/> tokens each), holding for every
/// layer the keys and values of those tokens, allocated once. A block is the unit of allocation: sequences own blocks
/// through their block tables (<see cref="KvSequence"/>), several sequences may share one (a forked prompt), and a
/// block goes back to the free list when its last owner releases it. Nothing here grows after construction.
/// Not thread-safe: one scheduler (or one caller) drives a pool.
/// </summary>
public sealed class KvBlockPool
{
    private readonly float[][] _keys, _values;
    private readonly int[] _refCount;
    private readonly int[] _free;
    private int _freeCount;

    public KvBlockPool(IReadOnlyList<PagedLayer> layers, int capacityBlocks, int blockSize = 16)
    {
        if (layers.Count == 0) throw new McException("a KV block pool needs at least one layer");
        if (blockSize < 1) throw new McException($"KV block size {blockSize}: expected at least 1 token");
        if (capacityBlocks < 1) throw new McException($"KV block pool of {capacityBlocks} blocks: expected at least 1");
        Layers = layers.ToArray();
        BlockSize = blockSize;
        Capacity = capacityBlocks;
        _keys = new float[Layers.Count][];
        _values = new float[Layers.Count][];
        for (int l = 0; l < Layers.Count; l++)
        {
            _keys[l] = new float[checked((long)capacityBlocks * blockSize * Layers[l].KvHeads * Layers[l].HeadDim)];
            _values[l] = new float[checked((long)capacityBlocks * blockSize * Layers[l].KvHeads * Layers[l].ValueDim)];
        }
        _refCount = new int[capacityBlocks];
        _free = new int[capacityBlocks];
        // Lowest block ids first (a stack: the last pushed is handed out first).
        for (int b = 0; b < capacityBlocks; b++) _free[b] = capacityBlocks - 1 - b;
        _freeCount = capacityBlocks;
    }

    /// <summary>A pool sized for <paramref name="tokens"/> tokens in all (rounded up to whole blocks).</summary>
    public static KvBlockPool ForTokens(IReadOnlyList<PagedLayer> layers, int tokens, int blockSize = 16) =>
        new(layers, Math.Max(1, (tokens + blockSize - 1) / blockSize), blockSize);

    public IReadOnlyList<PagedLayer> Layers { get; }

    public int BlockSize { get; }

    /// <summary>Blocks in the pool.</summary>
    public int Capacity { get; }

    /// <summary>Blocks owned by at least one sequence (a shared block counts once).</summary>
    public int BlocksInUse => Capacity - _freeCount;

    public int FreeBlocks => _freeCount;

    /// <summary>Layer <paramref name="layer"/>'s keys: [block, slot, kvHeads, headDim].</summary>
    public float[] Keys(int layer) => _keys[layer];

    /// <summary>Layer <paramref name="layer"/>'s values: [block, slot, kvHeads, valueDim].</summary>
    public float[] Values(int layer) => _values[layer];

    /// <summary>How many sequences own <paramref name="block"/> (0: free).</summary>
    public int Owners(int block) => _refCount[block];

    internal int Allocate()
    {
        if (_freeCount == 0) throw new McException($"the KV block pool is full ({Capacity} blocks of {BlockSize} tokens)");
        int block = _free[--_freeCount];
        _refCount[block] = 1;
        return block;
    }

    internal void Retain(int block) => _refCount[block]++;

    internal void Release(int block)
    {
        if (_refCount[block] <= 0) throw new InvalidOperationException($"KV block {block} released more often than owned");
        if (--_refCount[block] == 0) _free[_freeCount++] = block;
    }

    /// <summary>Copies every layer's keys and values of block <paramref name="from"/> into block <paramref name="to"/> (copy on write).</summary>
    internal void CopyBlock(int from, int to)
    {
        for (int l = 0; l < Layers.Count; l++)
        {
            int k = BlockSize * Layers[l].KvHeads * Layers[l].HeadDim, v = BlockSize * Layers[l].KvHeads * Layers[l].ValueDim;
            Array.Copy(_keys[l], (long)from * k, _keys[l], (long)to * k, k);
            Array.Copy(_values[l], (long)from * v, _values[l], (long)to * v, v);
        }
    }

    /// <summary>A new, empty sequence that may grow to <paramref name="maxTokens"/> tokens (its block table is allocated now, once).</summary>
    public KvSequence CreateSequence(int maxTokens)
    {
        if (maxTokens < 1) throw new McException($"a sequence of at most {maxTokens} tokens: expected at least 1");
        return new KvSequence(this, (maxTokens + BlockSize - 1) / BlockSize);
    }
}
