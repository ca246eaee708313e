namespace ModelCompiler.Benchmarks;

/// <summary>The obvious loop, for contrast: y[i, j] = Σ_k x[i, k]·w[j, k] + b[j] on W [N, K] as stored, one thread.</summary>
public static class Naive
{
    public static void Linear(float[] x, int m, float[] w, int n, int k, float[] b, float[] y)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float acc = 0;
                for (int kk = 0; kk < k; kk++) acc += x[i * k + kk] * w[j * k + kk];
                y[i * n + j] = acc + b[j];
            }
    }
}
