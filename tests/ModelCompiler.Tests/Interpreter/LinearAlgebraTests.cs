using ModelCompiler.IR;
using static ModelCompiler.Tests.Interpreter.TestModel;

namespace ModelCompiler.Tests.Interpreter;

public sealed class LinearAlgebraTests
{
    [Fact]
    public void LinearWithAndWithoutBias()
    {
        // x = [[1,2,3],[4,5,6]], w = [[1,0,-1],[0.5,0.5,0.5]]: x·wᵀ = [[-2,3],[-2,7.5]].
        var m = new TestModel();
        var x = m.Input("x", F([2, 3], 1, 2, 3, 4, 5, 6));
        var w = m.Weight("w", F([2, 3], 1, 0, -1, 0.5, 0.5, 0.5));
        var b = m.Weight("b", F([2], 10, -1));
        m.Graph.SetOutput("plain", m.B.Linear(x, w));
        m.Graph.SetOutput("biased", m.B.Linear(x, w, b));
        var r = m.RunAll();
        Check.Shape([2, 2], r["plain"]);
        Check.Close([-2, 3, -2, 7.5], r["plain"]);
        Check.Close([8, 2, 8, 6.5], r["biased"]);
    }

    [Fact]
    public void LinearOnRank3InputMatchesALoop()
    {
        const int B = 2, S = 3, K = 5, N = 4;
        var xv = Noise(1, B * S * K);
        var wv = Noise(2, N * K);
        var bv = Noise(3, N);
        var m = new TestModel();
        var y = m.Run(m.B.Linear(m.Input("x", F([B, S, K], xv)), m.Weight("w", F([N, K], wv)), m.Weight("b", F([N], bv))));
        var expected = new double[B * S * N];
        for (int r = 0; r < B * S; r++)
            for (int n = 0; n < N; n++)
            {
                double acc = bv[n];
                for (int k = 0; k < K; k++) acc += xv[r * K + k] * wv[n * K + k];
                expected[r * N + n] = acc;
            }
        Check.Shape([B, S, N], y);
        Check.Close(expected, y);
    }

    [Fact]
    public void MatMulHandComputed()
    {
        // [[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]]
        var m = new TestModel();
        var y = m.Run(m.B.Add(OpKind.MatMul, [m.Input("a", F([2, 2], 1, 2, 3, 4)), m.Input("b", F([2, 2], 5, 6, 7, 8))]));
        Check.Close([19, 22, 43, 50], y);
    }

    [Fact]
    public void MatMulBroadcastsBatchDims()
    {
        // a[2,1,M,K] @ b[3,K,N] → [2,3,M,N]: a's matrix depends on the first batch index, b's on the second.
        const int M = 2, K = 3, N = 4;
        var av = Noise(4, 2 * M * K);
        var bv = Noise(5, 3 * K * N);
        var m = new TestModel();
        var y = m.Run(m.B.Add(OpKind.MatMul, [m.Input("a", F([2, 1, M, K], av)), m.Input("b", F([3, K, N], bv))]));
        Check.Shape([2, 3, M, N], y);
        var expected = new double[2 * 3 * M * N];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                for (int r = 0; r < M; r++)
                    for (int c = 0; c < N; c++)
                    {
                        double acc = 0;
                        for (int k = 0; k < K; k++) acc += av[(i * M + r) * K + k] * bv[(j * K + k) * N + c];
                        expected[((i * 3 + j) * M + r) * N + c] = acc;
                    }
        Check.Close(expected, y);
    }
}
