namespace ModelCompiler.IR;

/// <summary>
/// Every operation of the IR. Kept small on purpose: passes pattern-match on these, backends
/// implement each once. The semantics of each op are documented in docs/architecture.md and
/// implemented for reference in the interpreter (src/Backends/Reference).
/// </summary>
public enum OpKind
{
    // Leaves
    Input,          // a model input, attrs: name
    Weight,         // a tensor from the checkpoint, attrs: name (checkpoint name), type = stored shape
    Const,          // a scalar constant, attrs: value (double); type f32[] or i64[]

    // Elementwise binary, numpy broadcasting
    Add, Sub, Mul, Div, Maximum, Minimum, Pow,

    // Elementwise unary
    Neg, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Relu, Gelu, GeluTanh, Silu, Abs,

    // Linear algebra
    Linear,         // x[..., K], w[N, K] (, b[N]) -> [..., N]   (PyTorch's nn.Linear layout)
    MatMul,         // a[..., M, K], b[..., K, N] -> [..., M, N], batch dims broadcast
    FusedLinear,    // one GEMM with its prologue and epilogue (made by the fusion passes): x[..., K], w[N, K], then in order the
                    // norm weight/bias (attr norm_inputs), bias (attr bias), residual (attr residual):
                    // y = residual + gate?(act(norm(x)·wᵀ + b)); attrs prologue (none|rms_norm|layer_norm), eps, offset,
                    // activation (none|relu|gelu|gelu_tanh|silu|sigmoid|tanh), gate (act(y[:N/2]) * y[N/2:]: SwiGLU/GeGLU)
    QuantizedLinear, // a linear whose weight stays compressed (made by the quantization passes): x[..., K], codes, scales f32[N, K/G],
                    // then in order zeros u8[N, K/G] (attr zeros), input_scale f32[K] (attr input_scale: x·input_scale first, AWQ),
                    // bias f32[N] (attr bias) -> [..., N]; attrs scheme, group_size G. Schemes: int8: codes i8[N, K], w = s·q;
                    // int4: codes u8[N, K/2], w = s·(q − z), each 32 codes of a row packed into 16 bytes (byte j: code j in the low
                    // nibble, code j+16 in the high one, as GGUF's Q4_0); w8a8: int8 weights, and each row of x rounded to int8 with
                    // its own scale max|x|/127 at run time (y = s_x·s_w·Σ q_x·q_w); sparse24 (G = 4): the codes are the 2 kept values of
                    // every 4 weights f32[N, K/2] and the scales slot their positions u8[N, K/8] (a nibble a group, low nibble the
                    // even group; p0 in bits 0–1, p1 > p0 in bits 2–3)

    // Normalisation and reductions
    RmsNorm,        // x[..., D], w[D]: x / sqrt(mean(x^2) + eps) * (offset + w); attrs eps, offset
    LayerNorm,      // x[..., D], w[D], b[D]: (x - mean) / sqrt(var + eps) * w + b; attrs eps
    Softmax,        // attrs axis
    ReduceMean,     // attrs axis, keepdims=1: mean over one axis (kept as size 1)

    // Shapes
    Reshape,        // the result type is the target shape; element counts must agree
    Transpose,      // attrs perm
    Slice,          // attrs axis, start, end (end exclusive)
    Concat,         // variadic, attrs axis
    Cast,           // to the result type's dtype

    // Transformer building blocks
    Embedding,      // ids[...] (integer), table[V, D] -> [..., D]; with attrs offset and vocab (a vocab-parallel shard of a vocab-row table): rows are ids offset..offset+V-1, other ids in 0..vocab-1 give zeros
    Positions,      // x (, past): positions offset..offset+n-1 along x's axis, offset = attr offset + past.shape[axis] when a past is given; attrs axis, offset -> i64[n]
    CacheAppend,    // past[B, P, ...], new[B, S, ...] -> [B, P+S, ...] along attr axis (1); the result's length is the symbol named by attr length (a KV cache grows)
    SinusoidalPositions, // pos i64[S] -> f32[S, dim]; attrs dim, base, interleaved
    Rope,           // x[B, S, H, D], pos i64[S]; attrs theta, rotary_dim, interleaved, scaling, factor, original_max_positions
    AlibiBias,      // qpos i64[S], kpos i64[T] -> f32[1, H, S, T]; attrs heads
    RelativePositionBias, // table[NB, H], qpos i64[S], kpos i64[T] -> f32[1, H, S, T]; attrs bidirectional, num_buckets, max_distance
    Attention,      // q[B,S,Hq,D], k[B,T,Hkv,D], v[B,T,Hkv,Dv] (, bias broadcastable to [B,Hq,S,T]) -> [B,S,Hq,Dv]; attrs scale, mask, window, sinks, prefix
    MoeCombine,     // router_logits[..., E], y_0..y_{E-1}[..., D] -> [..., D]; attrs top_k, normalize

    // Position schemes of the literature variants (examples/variants)
    Xpos,           // x[B, S, H, D], pos i64[S] -> [B, S, H, D]: RoPE at pos times ζ_i^(±pos/scale_base), ζ_i = (2i + 0.4·D)/(1.4·D) for pair i (Sun et al. 2022); attrs theta, scale_base, downscale (− sign, for keys), interleaved
    RelativeScores, // x[B, S, H, D], table[L, H, D], qpos i64[S], kpos i64[T] -> [B, H, S, T]: Σ_d x[b,i,h,d]·table[qpos_i − kpos_j, h, d]; 0 where the distance is outside 0..L−1 (Transformer-XL's position terms)

    // Paged KV cache (made by the paged-kv-cache pass; run by a runtime that holds the block pool)
    PagedAttention, // q[1,T,Hq,D], k[1,T,Hkv,D], v[1,T,Hkv,Dv] -> [1,T,Hq,Dv]: T tokens of one or more sequences; each token's k/v is written
                    // to layer attr `layer` of its sequence's paged cache at its position, then its query attends over that sequence's
                    // cache through the block table; attrs layer, scale, mask, window, sinks, prefix, alibi (heads' ALiBi slopes × (j − i))
    GatherRows,     // x[..., D], rows[1, R] (integer indices into x's rows, all leading axes flattened) -> [1, R, D] (the paged-logit-rows pass)

    // Collectives of a tensor-parallel rank (made by the tensor-parallel pass; every rank runs the same ops in the same order)
    AllReduce,      // x -> x summed over the attr ranks ranks of the group
    AllGather,      // x[..., n, ...] -> [..., ranks·n, ...]: every rank's x concatenated in rank order along attr axis; attrs axis, ranks
}

/// <summary>What a pass or backend may assume about an op, in one table.</summary>
public static class OpTraits
{
    public static bool IsLeaf(this OpKind op) => op is OpKind.Input or OpKind.Weight or OpKind.Const;

    public static bool IsElementwiseBinary(this OpKind op) =>
        op is OpKind.Add or OpKind.Sub or OpKind.Mul or OpKind.Div or OpKind.Maximum or OpKind.Minimum or OpKind.Pow;

    public static bool IsElementwiseUnary(this OpKind op) =>
        op is OpKind.Neg or OpKind.Exp or OpKind.Log or OpKind.Sqrt or OpKind.Rsqrt or OpKind.Tanh or OpKind.Sigmoid
            or OpKind.Relu or OpKind.Gelu or OpKind.GeluTanh or OpKind.Silu or OpKind.Abs;

    public static bool IsCommutative(this OpKind op) =>
        op is OpKind.Add or OpKind.Mul or OpKind.Maximum or OpKind.Minimum;

    /// <summary>The op's spelling in the printed IR and in the DSL: snake_case of the enum name.</summary>
    public static string Mnemonic(this OpKind op) => Mnemonics[(int)op];

    public static bool TryParseMnemonic(string text, out OpKind op) => ByMnemonic.TryGetValue(text, out op);

    private static readonly string[] Mnemonics = Enum.GetValues<OpKind>().Select(ToSnake).ToArray();

    private static readonly Dictionary<string, OpKind> ByMnemonic =
        Enum.GetValues<OpKind>().ToDictionary(ToSnake, v => v, StringComparer.Ordinal);

    private static string ToSnake(OpKind op)
    {
        var name = op.ToString();
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0) sb.Append('_');
            sb.Append(char.ToLowerInvariant(name[i]));
        }
        return sb.ToString();
    }
}
