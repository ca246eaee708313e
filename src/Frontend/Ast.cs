using System.Collections.Immutable;
using ModelCompiler.IR;

namespace ModelCompiler.Frontend;

// The syntax tree of an .arch file. Every node keeps the span of its first character so that
// diagnostics and the IR can point back at the source.

public abstract record Expr(SourceSpan Span);
public sealed record IntLit(SourceSpan Span, long Value) : Expr(Span);
public sealed record FloatLit(SourceSpan Span, double Value) : Expr(Span);
public sealed record BoolLit(SourceSpan Span, bool Value) : Expr(Span);
/// <summary>A string; <see cref="Parts"/> alternate literal text (string) and interpolated expressions (Expr).</summary>
public sealed record StringLit(SourceSpan Span, ImmutableArray<object> Parts) : Expr(Span);
public sealed record Ident(SourceSpan Span, string Name) : Expr(Span);
public sealed record ListExpr(SourceSpan Span, ImmutableArray<Expr> Items) : Expr(Span);
public sealed record Unary(SourceSpan Span, string Op, Expr Operand) : Expr(Span);
public sealed record Binary(SourceSpan Span, string Op, Expr Left, Expr Right) : Expr(Span);
public sealed record Conditional(SourceSpan Span, Expr Condition, Expr Then, Expr Else) : Expr(Span);
public sealed record Call(SourceSpan Span, string Callee, ImmutableArray<Arg> Args) : Expr(Span);
public sealed record Index(SourceSpan Span, Expr Target, Expr At) : Expr(Span);
/// <summary>A call argument, positional (<see cref="Name"/> null) or named (<c>eps: 1e-5</c>).</summary>
public sealed record Arg(SourceSpan Span, string? Name, Expr Value);

public sealed record TypeRef(SourceSpan Span, string Name);
public sealed record TensorTypeExpr(SourceSpan Span, string DType, ImmutableArray<Expr> Dims);

public abstract record Stmt(SourceSpan Span);
public sealed record Assign(SourceSpan Span, ImmutableArray<string> Targets, Expr Value) : Stmt(Span);
/// <summary><c>weight w: [out, in] = "name" transposed chunk(0, 3)</c>: a checkpoint tensor and the views that turn it into the declared shape.</summary>
public sealed record WeightDecl(SourceSpan Span, string Name, TensorTypeExpr Type, Expr Source, ImmutableArray<WeightView> Views) : Stmt(Span);
public sealed record WeightView(SourceSpan Span, string Kind, ImmutableArray<Expr> Args);
public sealed record For(SourceSpan Span, string Var, Expr From, Expr To, ImmutableArray<Stmt> Body) : Stmt(Span);
public sealed record If(SourceSpan Span, Expr Condition, ImmutableArray<Stmt> Then, ImmutableArray<Stmt> Else) : Stmt(Span);
public sealed record Return(SourceSpan Span, Expr Value) : Stmt(Span);
public sealed record Output(SourceSpan Span, Expr Name, Expr Value) : Stmt(Span);
public sealed record ExprStmt(SourceSpan Span, Expr Value) : Stmt(Span);

public abstract record Decl(SourceSpan Span);
public sealed record ImportDecl(SourceSpan Span, string Path) : Decl(Span);
public sealed record ModelDecl(SourceSpan Span, string Name) : Decl(Span);
/// <summary><c>hyper dim: int = 4096 from hidden_size | d_model</c></summary>
public sealed record HyperDecl(SourceSpan Span, string Name, TypeRef Type, Expr Default, ImmutableArray<string> ConfigKeys) : Decl(Span);
public sealed record InputDecl(SourceSpan Span, string Name, TensorTypeExpr Type) : Decl(Span);
public sealed record Param(SourceSpan Span, string Name, TypeRef? Type, Expr? Default);
public sealed record BlockDecl(SourceSpan Span, string Name, ImmutableArray<Param> Params, ImmutableArray<Stmt> Body) : Decl(Span);
public sealed record ForwardDecl(SourceSpan Span, ImmutableArray<Stmt> Body) : Decl(Span);
/// <summary><c>ignore initializer_range, use_cache</c>: config keys known to have no effect on inference.</summary>
public sealed record IgnoreDecl(SourceSpan Span, ImmutableArray<string> Keys) : Decl(Span);

/// <summary>
/// A declaration that failed to parse (its error is already reported): its keyword and, when it got that
/// far, its name, so that later checks neither call it missing nor report every use of it.
/// </summary>
public sealed record BrokenDecl(SourceSpan Span, string Keyword, string? Name) : Decl(Span);

public sealed record ArchFile(string Path, string Text, ImmutableArray<Decl> Decls);
