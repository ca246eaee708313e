using ModelCompiler.Backends;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Distributed;
using ModelCompiler.Tests.Cli;
using ModelCompiler.Tests.Oracles;

namespace ModelCompiler.Tests.Distributed;

/// <summary>
/// <c>--tp N</c> on the CPU side: every zoo oracle sharded over 2 and 4 ranks (threads talking through the in-process
/// communicator) gives Hugging Face's logits within 1e-4 and its greedy tokens, through <c>mc eval</c> as a user runs it.
/// </summary>
public sealed class TensorParallelTests
{
    public static TheoryData<string> Families() => new(Directory.GetDirectories(Path.Combine(AppContext.BaseDirectory, "oracles"))
        .Select(Path.GetFileName).Order(StringComparer.Ordinal)!);

    /// <summary>Families whose head counts 4 ranks do not divide (6 heads; 2 heads).</summary>
    private static readonly HashSet<string> NotFourWay = ["bloom_alibi6", "gpt2_layerscale"];

    [Theory]
    [MemberData(nameof(Families))]
    public void Two_ranks_on_the_interpreter_reproduce_the_oracle(string family) =>
        OracleCheck.Run(family, OracleCheck.Folder(family), null, "--tp", "2");

    [Theory]
    [MemberData(nameof(Families))]
    public void Four_ranks_reproduce_the_oracle_logits_or_refuse_in_one_line(string family)
    {
        var reference = Path.Combine(OracleCheck.Folder(family), "reference.safetensors");
        var outPath = CliRunner.TempFile("tp4.safetensors");
        try
        {
            var r = CliRunner.Run("eval", OracleCheck.Folder(family), "--inputs", reference, "--out", outPath, "--tp", "4");
            if (NotFourWay.Contains(family))
            {
                Assert.Equal(1, r.ExitCode);
                Assert.Contains("--tp 4 does not divide", r.Err);
                Assert.Single(r.Err.Trim().Split('\n'));
                return;
            }
            Assert.True(r.ExitCode == 0, r.Err);
            using var expected = SafetensorsFile.Open(reference);
            using var actual = SafetensorsFile.Open(outPath);
            AssertClose(expected.ReadFloat32("logits"), actual.ReadFloat32("logits"), family);
        }
        finally
        {
            File.Delete(outPath);
        }
    }

    [Theory]
    [InlineData("llama")]           // GQA: 2 KV heads split over 2 ranks
    [InlineData("llama_mqa")]       // MQA: the one KV head replicated
    [InlineData("mixtral_moe")]     // experts' partial sums combined before one all-reduce
    [InlineData("bloom_alibi6")]    // ALiBi slopes of each rank's own heads
    [InlineData("t5")]              // encoder-decoder, relative position bias sliced by heads
    [InlineData("gemma")]           // scaled embedding (a partial sum times a constant)
    public void Two_ranks_on_the_cpu_target_reproduce_the_oracle(string family) =>
        OracleCheck.Run(family, OracleCheck.Folder(family), null, "--tp", "2", "--target", "cpu");

    [Fact]
    public void The_printed_program_of_a_rank_shows_megatron_sharding()
    {
        var r = CliRunner.Run("print-ir", OracleCheck.Example("llama.arch"), "--tp", "2", "--rank", "1");
        Assert.True(r.ExitCode == 0, r.Err);
        var lines = r.Out.Split('\n');
        var loaded = ModelFrontend.Load(OracleCheck.Example("llama.arch"), null, new Dictionary<string, string>());
        long layers = (long)loaded.Graph.Hyperparameters["n_layers"];
        // One all-reduce after each attention and each MLP, one for the vocab-parallel embedding; one gather of the logits.
        Assert.Equal(2 * layers + 1, lines.Count(l => l.Contains("= all_reduce ")));
        Assert.Equal(1, lines.Count(l => l.Contains("= all_gather ")));
        Assert.Contains(lines, l => l.Contains("= embedding ") && l.Contains("offset="));
        // Every attention runs on half of the query heads.
        long heads = (long)loaded.Graph.Hyperparameters["n_heads"];
        var attention = lines.Where(l => l.Contains("= attention ")).ToList();
        Assert.Equal(layers, attention.Count);
        Assert.All(attention, l => Assert.Contains($",{heads / 2},", l[l.LastIndexOf(':')..]));
    }

    [Fact]
    public void A_rank_count_that_splits_heads_is_a_one_line_error()
    {
        var r = CliRunner.RunProcess("print-ir", CliRunner.Example("llama.arch"), "--tp", "3");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--tp 3 does not divide", r.Err);
        Assert.DoesNotContain("   at ", r.Err);
        var zero = CliRunner.Run("eval", CliRunner.Example("llama.arch"), "--inputs", "x", "--out", "y", "--tp", "0");
        Assert.Equal(2, zero.ExitCode);
    }

    [Fact]
    public void Sharding_for_one_rank_changes_nothing()
    {
        var graph = ModelFrontend.Load(OracleCheck.Example("llama.arch"), null, new Dictionary<string, string>()).Graph;
        var before = Printer.Print(graph);
        Assert.False(new TensorParallelShard().Run(graph));
        Assert.Equal(before, Printer.Print(graph));
    }

    [Fact]
    public void All_reduce_and_all_gather_give_every_rank_the_same_result()
    {
        var results = TensorParallel.RunRanks(3, (rank, comm) =>
        {
            var sum = new[] { rank + 0.5f, 10f * rank, -1f };
            comm.AllReduceSum(sum);
            var gathered = new double[6];
            comm.AllGather(new double[] { rank, -rank }, gathered);
            return (sum, gathered);
        });
        foreach (var (sum, gathered) in results)
        {
            Assert.Equal(new[] { 4.5f, 30f, -3f }, sum);
            Assert.Equal(new double[] { 0, 0, 1, -1, 2, -2 }, gathered);
        }
    }

    [Fact]
    public void A_failing_rank_releases_the_others_and_its_error_comes_out()
    {
        var error = Assert.Throws<McException>(() => TensorParallel.RunRanks(2, (rank, comm) =>
        {
            if (rank == 1) throw new McException("rank 1 broke");
            comm.AllReduceSum(new float[4]);   // would wait for rank 1 forever without the release
            return 0;
        }));
        Assert.Equal("rank 1 broke", error.Message);
    }

    [Fact]
    public void A_sharded_graph_run_without_a_communicator_says_so()
    {
        var graphs = TensorParallel.ShardGraphs(
            () => ModelFrontend.Load(OracleCheck.Example("llama.arch"), null, new Dictionary<string, string>()).Graph, 2);
        var interpreter = new Backends.Reference.Interpreter(graphs[0]);
        var ids = Backends.Reference.RefTensor.FromInts([1, 2], [1, 2]);
        var e = Assert.Throws<McException>(() => interpreter.Run(new Dictionary<string, Backends.Reference.RefTensor> { ["input_ids"] = ids },
            (name, type) => Backends.Reference.RefTensor.FromFloats(type.Shape.Select(d => d.Size).ToArray(), new double[type.Shape.Aggregate(1L, (a, d) => a * d.Size)])));
        Assert.Contains("tensor-parallel", e.Message);
    }

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxRef = expected.Max(x => Math.Abs((double)x));
        double maxDiff = expected.Zip(actual, (e, a) => Math.Abs((double)e - a)).Max();
        Assert.True(maxDiff / maxRef <= OracleCheck.Tolerance, $"{what}: relative error {maxDiff / maxRef:E3}");
    }
}
