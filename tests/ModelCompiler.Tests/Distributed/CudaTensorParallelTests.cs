using System.Globalization;
using ModelCompiler.Backends.Cuda;
using ModelCompiler.Cli;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Cli;
using ModelCompiler.Tests.Oracles;
using Xunit.Abstractions;

namespace ModelCompiler.Tests.Distributed;

/// <summary>
/// <c>--target cuda --tp N</c> without GPUs: the cuda target's lockstep driver, its collective ops on device buffers
/// and the vocab-parallel embedding run on ILGPU's CPU accelerator (<c>--target cuda-sim --tp 2</c>, one simulated
/// device per rank, the in-process communicator through the host), against the unsharded interpreter and Hugging
/// Face's oracle. NCCL itself needs GPUs (bench/gpu/run_tp.sh); here only its absence is checked.
/// </summary>
public sealed class CudaTensorParallelTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("llama")]       // GQA: 4 query heads and 2 KV heads, split over 2 ranks; SwiGLU; separate LM head
    [InlineData("llama_mqa")]   // MQA: the one KV head replicated on both ranks
    public void Two_simulated_gpus_match_the_interpreter_and_the_oracle(string family)
    {
        var folder = OracleCheck.Folder(family);
        var reference = Path.Combine(folder, "reference.safetensors");
        using var refFile = SafetensorsFile.Open(reference);
        var expectedIds = refFile.ReadInt64("greedy_ids");
        int steps = (int)(expectedIds.Length - refFile.Get("input_ids").Shape[1]);
        var interpreter = Eval(folder, reference, "--target", "interpreter");
        var sharded = Eval(folder, reference, "--target", "cuda-sim", "--tp", "2", "--generate", steps.ToString(CultureInfo.InvariantCulture));
        try
        {
            var hf = refFile.ReadFloat32("logits");
            double max = hf.Max(x => Math.Abs((double)x));
            var (interpreterLogits, _) = Read(interpreter);
            var (shardedLogits, shardedIds) = Read(sharded);
            double vsInterpreter = interpreterLogits.Zip(shardedLogits, (a, b) => Math.Abs((double)a - b)).Max() / max;
            double vsOracle = hf.Zip(shardedLogits, (a, b) => Math.Abs((double)a - b)).Max() / max;
            output.WriteLine($"{family} cuda-sim --tp 2: relative logits error {vsInterpreter:E3} vs the interpreter, {vsOracle:E3} vs Hugging Face");
            Assert.True(vsInterpreter <= OracleCheck.Tolerance, $"vs the interpreter: {vsInterpreter:E3}");
            Assert.True(vsOracle <= OracleCheck.Tolerance, $"vs Hugging Face: {vsOracle:E3}");
            Assert.Equal(expectedIds, shardedIds);
        }
        finally
        {
            File.Delete(interpreter);
            File.Delete(sharded);
        }
    }

    /// <summary>mc run's stepper on two simulated GPUs: the prompt's last logits row and the next greedy token of the oracle.</summary>
    [Fact]
    public void The_sharded_stepper_continues_the_oracle_prompt()
    {
        var folder = OracleCheck.Folder("llama");
        using var refFile = SafetensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
        var inputShape = refFile.Get("input_ids").Shape;
        var prompt = refFile.ReadInt64("input_ids").Take((int)inputShape[1]).Select(id => (int)id).ToArray();
        var expected = refFile.ReadFloat32("logits");
        var greedy = refFile.ReadInt64("greedy_ids");
        long vocab = refFile.Get("logits").Shape[^1];
        using var store = WeightStore.Open(folder);
        ModelCompiler.IR.Graph Elaborate() => ModelCompiler.Frontend.HuggingFaceImport.Load(folder, new Dictionary<string, string>()).Graph;
        using var stepper = CudaShardedStepperFor(Elaborate, store);
        var row = stepper.Append(prompt);
        var last = expected.AsSpan((int)((prompt.Length - 1) * vocab), (int)vocab).ToArray();   // batch row 0, last position
        double max = last.Max(x => Math.Abs((double)x));
        Assert.True(last.Zip(row, (a, b) => Math.Abs((double)a - b)).Max() / max <= OracleCheck.Tolerance);
        int next = Array.IndexOf(row, row.Max());
        Assert.Equal(greedy[prompt.Length], next);
        var second = stepper.Append([next]);
        Assert.Equal(greedy[prompt.Length + 1], Array.IndexOf(second, second.Max()));
        Assert.Equal(prompt.Length + 1, stepper.Position);
    }

    private static CudaShardedStepper CudaShardedStepperFor(Func<ModelCompiler.IR.Graph> elaborate, WeightStore store)
    {
        var group = CudaRankGroup.Open(2, simulate: true);
        var model = CudaShardedModel.Create(group, elaborate, CudaBackend.CachedPipeline, store.ReadFloat32);
        return new CudaShardedStepper(model, model.Graphs[0], contextLength: null);
    }

    /// <summary>mc bench's sharded run: its JSON contract, and the collectives the pass put in (2 per layer + the embedding's).</summary>
    [Fact]
    public void Bench_over_two_simulated_gpus_reports_rates_and_collectives()
    {
        var r = CliRunner.Run("bench", CliRunner.Example("llama.arch"), "--set", "dim=32", "n_layers=2", "n_heads=4", "n_kv_heads=2", "ffn_dim=64", "vocab=64",
            "--prompt", "4", "--gen", "2", "--reps", "1", "--target", "cuda-sim", "--tp", "2", "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        using var json = System.Text.Json.JsonDocument.Parse(r.Out.Trim().Split('\n')[^1]);
        var root = json.RootElement;
        Assert.Equal(2, root.GetProperty("tp").GetInt32());
        Assert.Equal(5, root.GetProperty("all_reduces_per_token").GetInt32());
        Assert.Equal(1, root.GetProperty("all_gathers_per_token").GetInt32());
        Assert.Equal(32 * sizeof(float), root.GetProperty("all_reduce_bytes").GetInt32());
        Assert.True(root.GetProperty("pp_tokens_per_s").GetDouble() > 0);
        Assert.True(root.GetProperty("ms_per_token").GetDouble() > 0);
        Assert.Equal(0, root.GetProperty("nccl_all_reduce").GetArrayLength());   // NCCL is measured on GPUs only
    }

    [Fact]
    public void A_missing_nccl_is_a_one_line_error_naming_what_to_install()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"mc-no-nccl-{Guid.NewGuid():N}");
        var e = Assert.Throws<McException>(() => NcclLibrary.Load(missing));
        Assert.Contains(NcclLibrary.PathVariable, e.Message);
        Assert.Contains("NCCL", e.Message);
        Assert.Contains("nvidia-nccl", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_rank_count_that_splits_heads_is_refused_before_any_gpu_is_looked_for()
    {
        var folder = OracleCheck.Folder("llama");
        var r = CliRunner.Run("eval", folder, "--inputs", Path.Combine(folder, "reference.safetensors"), "--out", CliRunner.TempFile("x.safetensors"), "--target", "cuda", "--tp", "3");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--tp 3 does not divide", r.Err);
        Assert.Single(r.Err.Trim().Split('\n'));
    }

    [Fact]
    public void Cuda_ranks_without_gpus_say_so_in_one_line()
    {
        if (Environment.GetEnvironmentVariable("MC_HAS_GPU") == "1") return; // the GPU machine runs the test classes too
        var folder = OracleCheck.Folder("llama");
        var r = CliRunner.Run("eval", folder, "--inputs", Path.Combine(folder, "reference.safetensors"), "--out", CliRunner.TempFile("x.safetensors"), "--target", "cuda", "--tp", "2");
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.Contains("no CUDA GPU", r.Err);
    }

    private static string Eval(string folder, string reference, params string[] args)
    {
        var outPath = Path.Combine(Path.GetTempPath(), $"mc-cudatp-{Guid.NewGuid():N}.safetensors");
        var stderr = new StringWriter();
        int code = McApp.Run(["eval", folder, "--inputs", reference, "--out", outPath, .. args], new StringWriter(), stderr);
        Assert.True(code == 0, $"mc eval {string.Join(" ", args)} exited with {code}: {stderr}");
        return outPath;
    }

    private static (float[] Logits, long[]? Ids) Read(string path)
    {
        using var file = SafetensorsFile.Open(path);
        return (file.ReadFloat32("logits"), file.Contains("greedy_ids") ? file.ReadInt64("greedy_ids") : null);
    }
}
