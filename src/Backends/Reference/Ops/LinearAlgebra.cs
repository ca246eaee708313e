using ModelCompiler.IR;

namespace ModelCompiler.Backends.Reference.Ops;

/// <summary>Linear and MatMul, accumulating in double in increasing k order (one thread per output row).</summary>
internal static class LinearAlgebra
{
    /// <summary>y[.., n] = Σ_k x[.., k]·w[n, k] + b[n].</summary>
    public static RefTensor Linear(Node node, RefTensor x, RefTensor w, RefTensor? bias)
    {
        int k = (int)w.Shape[1], n = (int)w.Shape[0];
        if (x.Rank < 1 || x.Shape[^1] != k) throw new InvalidOperationException($"{Interpreter.Describe(node)}: {x} does not match weight {w}");
        var xs = x.F!;
        var ws = w.F!;
        var bs = bias?.F;
        int rows = Layout.Rows(x.Shape);
        var shape = x.Shape.ToArray();
        shape[^1] = n;
        var y = new double[Layout.Count(shape)];
        Parallel.For(0, rows, r =>
        {
            int xo = r * k;
            for (int j = 0; j < n; j++)
            {
                int wo = j * k;
                double acc = 0;
                for (int i = 0; i < k; i++) acc += xs[xo + i] * ws[wo + i];
                y[r * n + j] = bs is null ? acc : acc + bs[j];
            }
        });
        return new RefTensor(node.Type.DType, shape, y, null);
    }

    /// <summary>
    /// The fused linear of the fusion passes, computed in the order its parts would run unfused:
    /// norm (prologue), x·wᵀ + b, activation or gate, + residual.
    /// </summary>
    public static RefTensor FusedLinear(Node node, RefTensor[] ins)
    {
        var a = node.Attrs;
        int normInputs = (int)a.Int("norm_inputs", 0), at = 2;
        RefTensor? normW = normInputs > 0 ? ins[at++] : null, normB = normInputs > 1 ? ins[at++] : null;
        RefTensor? bias = a.Bool("bias", false) ? ins[at++] : null;
        RefTensor? residual = a.Bool("residual", false) ? ins[at] : null;
        var x = a.Str("prologue", "none") switch
        {
            "rms_norm" => Normalization.RmsNorm(node, ins[0], normW, null),
            "layer_norm" => Normalization.LayerNorm(node, ins[0], normW, normB),
            _ => ins[0],
        };
        var y = Linear(node, x, ins[1], bias);
        var activation = a.Str("activation", "none");
        var f = activation == "none" ? null : Elementwise.UnaryFunction(activation switch
        {
            "relu" => OpKind.Relu, "gelu" => OpKind.Gelu, "gelu_tanh" => OpKind.GeluTanh, "silu" => OpKind.Silu,
            "sigmoid" => OpKind.Sigmoid, _ => OpKind.Tanh,
        });
        var ys = y.F!;
        int n = (int)y.Shape[^1], rows = Layout.Rows(y.Shape);
        bool gate = a.Bool("gate", false);
        int outN = gate ? n / 2 : n;
        var shape = y.Shape.ToArray();
        shape[^1] = outN;
        var r = new double[rows * outN];
        for (int row = 0; row < rows; row++)
            for (int j = 0; j < outN; j++)
            {
                double v = ys[row * n + j];
                if (f is not null) v = f(v);
                if (gate) v *= ys[row * n + outN + j];
                if (residual is not null) v = residual.F![row * outN + j] + v;
                r[row * outN + j] = v;
            }
        return new RefTensor(node.Type.DType, shape, r, null);
    }

    /// <summary>
    /// The quantized linear by its definition: the weight dequantized (int8: s·q; int4: s·(q − z), codes unpacked from
    /// their blocks of 32), x multiplied by the input scale if there is one; for w8a8 each row of x is first rounded to
    /// int8 with scale max|x|/127 in float32 arithmetic, round half to even, and y = s_x·Σ_k q_x·w.
    /// </summary>
    public static RefTensor QuantizedLinear(Node node, RefTensor[] ins)
    {
        var a = node.Attrs;
        string scheme = a.Str("scheme");
        int group = (int)a.Int("group_size"), at = 3;
        var x = ins[0];
        int k = (int)x.Shape[^1], n = (int)ins[1].Shape[0], groups = k / group;
        var codes = ins[1].I;
        var scales = ins[2].F;
        var zeros = a.Bool("zeros", false) ? ins[at++].I : null;
        var inputScale = a.Bool("input_scale", false) ? ins[at++].F : null;
        var bias = a.Bool("bias", false) ? ins[at] : null;

        var packed = scheme == "int4" ? Array.ConvertAll(codes!, v => (byte)v) : null;
        var w = new double[(long)n * k];
        if (scheme == "sparse24")
            Sparse24Dense(ins[1].F!, ins[2].I!, n, k, w);
        else
            for (int r = 0; r < n; r++)
                for (int c = 0; c < k; c++)
                {
                    int g = r * groups + c / group;
                    w[(long)r * k + c] = scheme == "int4"
                        ? scales![g] * (Runtime.Kernels.QuantizedWeight.Int4Code(packed!, r, c, k) - zeros![g])
                        : scales![g] * codes![(long)r * k + c];
                }
        var xs = (double[])x.F!.Clone();
        int rows = Layout.Rows(x.Shape);
        if (inputScale is not null)
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < k; c++) xs[r * k + c] = (float)(xs[r * k + c] * inputScale[c]);
        var rowScale = new double[rows];
        Array.Fill(rowScale, 1.0);
        if (scheme == "w8a8")
            for (int r = 0; r < rows; r++)
            {
                float max = 0;
                for (int c = 0; c < k; c++) max = MathF.Max(max, MathF.Abs((float)xs[r * k + c]));
                float s = max > 0 ? max / 127f : 1f;
                rowScale[r] = s;
                for (int c = 0; c < k; c++)
                    xs[r * k + c] = Math.Clamp(MathF.Round((float)xs[r * k + c] / s, MidpointRounding.ToEven), -127, 127);
            }
        var y = Linear(node, RefTensor.FromFloats(x.Shape, xs, x.DType), RefTensor.FromFloats([n, k], w), null);
        var ys = y.F!;
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < n; j++) ys[r * n + j] = ys[r * n + j] * rowScale[r] + (bias?.F![j] ?? 0);
        return y;
    }

    /// <summary>
    /// A 2:4-sparse weight written out dense: of every 4 weights of a row, the two kept values (values[r, 2g], [r, 2g+1])
    /// sit at positions p0 = bits 0–1 and p1 = bits 2–3 of the nibble of group g (low nibble: even g) of positions[r, g/2].
    /// </summary>
    private static void Sparse24Dense(double[] values, long[] positions, int n, int k, double[] w)
    {
        for (int r = 0; r < n; r++)
            for (int g = 0; g < k / 4; g++)
            {
                int nibble = (int)(positions[(long)r * (k / 8) + g / 2] >> (g % 2 * 4)) & 0xF;
                w[(long)r * k + 4 * g + (nibble & 3)] += values[(long)r * (k / 2) + 2 * g];
                w[(long)r * k + 4 * g + (nibble >> 2)] += values[(long)r * (k / 2) + 2 * g + 1];
            }
    }

    /// <summary>c[..., m, n] = Σ_k a[..., m, k]·b[..., k, n], the batch dims broadcast.</summary>
    public static RefTensor MatMul(Node node, RefTensor a, RefTensor b)
    {
        long m = a.Shape[^2], k = a.Shape[^1], n = b.Shape[^1];
        if (b.Shape[^2] != k) throw new InvalidOperationException($"{Interpreter.Describe(node)}: inner dimensions of {a} and {b} differ");
        var aBatch = a.Shape[..^2];
        var bBatch = b.Shape[..^2];
        var batch = Layout.Broadcast(aBatch, bBatch, () => Interpreter.Describe(node));
        // Which matrix of a and of b each batch entry uses.
        var aMat = Layout.BroadcastMap(batch, aBatch);
        var bMat = Layout.BroadcastMap(batch, bBatch);
        var shape = batch.Concat([m, n]).ToArray();
        int M = (int)m, K = (int)k, N = (int)n;
        bool isFloat = a.F is not null;
        var cf = isFloat ? new double[Layout.Count(shape)] : null;
        var ci = isFloat ? null : new long[Layout.Count(shape)];
        Parallel.For(0, aMat.Length * M, row =>
        {
            int bi = row / M, mi = row % M;
            int ao = aMat[bi] * M * K + mi * K, bo = bMat[bi] * K * N, co = (bi * M + mi) * N;
            if (isFloat)
            {
                // Row of c accumulated k-outer; every element still sums its products in increasing k.
                var acc = new double[N];
                for (int kk = 0; kk < K; kk++)
                {
                    double av = a.F![ao + kk];
                    for (int j = 0; j < N; j++) acc[j] += av * b.F![bo + kk * N + j];
                }
                Array.Copy(acc, 0, cf!, co, N);
            }
            else
            {
                var acc = new long[N];
                for (int kk = 0; kk < K; kk++)
                {
                    long av = a.I![ao + kk];
                    for (int j = 0; j < N; j++) acc[j] = unchecked(acc[j] + av * b.I![bo + kk * N + j]);
                }
                Array.Copy(acc, 0, ci!, co, N);
            }
        });
        return new RefTensor(node.Type.DType, shape, cf, ci);
    }
}
